// Where sessions live, behind one interface (SessionBackend), one implementation per mode:
//   WorkerLocal  - the legacy behaviour: sessions in this worker's memory only.
//   Dual         - writes go to the store and to memory; reads prefer the store and fall back
//                  to memory; local sessions are copied into the store (on start and switch).
//   Centralized  - the store only (the default): any worker serves any session.
// SessionModes holds the current mode and switches it on a running worker without losing a
// session: it holds new requests at a gate, waits for the in-flight ones, moves the data
// (memory -> store, or store -> memory for the sessions this worker owns), then lets the
// held requests run in the new mode. Response shapes are the same in every mode.
// The code lives in sessions/: types.ts (shared types and helpers), local.ts (WorkerLocal),
// store-backend.ts (Centralized, Dual), modes.ts (the mode switch). Single activation of a session
// (Centralized and Dual) sits above the backends, in activation/.
export * from './sessions/types.ts';
export * from './sessions/local.ts';
export * from './sessions/store-backend.ts';
export * from './sessions/modes.ts';
