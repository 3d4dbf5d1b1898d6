/**
 * keyplex's errors, by family: the base class and its detail (base.ts), a
 * request's failures on its way (request.ts), admission's refusals
 * (admission.ts), and the application's own setup (setup.ts). See base.ts
 * for the contract.
 */
export * from './base';
export * from './request';
export * from './admission';
export * from './setup';
