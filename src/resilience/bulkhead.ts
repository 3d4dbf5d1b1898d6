/** The bulkhead moved to `./lanes/`; this path stays for the modules that import it. */
export * from './lanes/index';
