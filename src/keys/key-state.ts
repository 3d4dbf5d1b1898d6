/**
 * Runtime state of keys and providers: the names other modules import.
 * The key and its lifecycle live in `./key`, the provider pool in `./pool`.
 */
export { Key as KeyState, Key, keyOfView, secretOf, type KeyChange, type KeyChangeListener } from './key';
export { ProviderPool, type PoolDeployment } from './pool';
