/**
 * Kept so that modules written against this path keep compiling: the one
 * validation toolkit is `config/check.ts` (descriptions that never quote what
 * could be a key, plain objects of any realm). Import from there.
 */
export { describe, isPlainObject } from './config/check';
