// The public surface of the API package: import types and constants from here.
export * from './meta.ts';
export * from './session-pool.ts';
export * from './session-migration.ts';
export * from './defaults.ts';
