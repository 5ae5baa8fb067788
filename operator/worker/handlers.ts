// Pluggable handlers: `name -> (ctx, args) => result`. A handler runs inside one session: it
// reads and may change `ctx.data` (a private copy); the worker writes the copy back with a
// version check only if it changed, and re-runs the handler on a conflict. Handlers must
// therefore be pure functions of (session data, args): no side effects outside ctx.data.
// The built-in handlers mirror the original DSPy bridge: programs defined and executed in a
// session, with execution counts and last-executed times, plus session variables.
import type { TSchema } from 'typebox';
import Type from 'typebox';
import { Compile } from 'typebox/compile';
import type { JsonValue } from '../store/types.ts';
import { WorkerError } from './errors.ts';

export type JsonObject = { [key: string]: JsonValue };

export interface HandlerContext {
  sessionId: string;
  /** The session's version the data was read at (1 for a temporary, anonymous session). */
  version: number;
  anonymous: boolean;
  pool: string;
  worker: string;
  /** The session's data, a private copy: change it (or assign a new object) to write. */
  data: JsonObject;
  /** Milliseconds since the epoch, fixed for one attempt. */
  now: number;
}

export type Handler = (ctx: HandlerContext, args: JsonValue) => JsonValue | Promise<JsonValue>;

/** A user-facing failure of a handler (bad input for its state): answered 422 HANDLER_ERROR. */
export class HandlerError extends Error {
  readonly details: JsonValue | undefined;
  constructor(message: string, details?: JsonValue) {
    super(message);
    this.name = 'HandlerError';
    this.details = details;
  }
}

interface Registered {
  run: Handler;
  check?: (args: unknown) => string | undefined;
  description: string;
}

export interface RegisterOptions {
  /** A TypeBox (JSON) schema the args must satisfy; failures answer 400 INVALID_ARGS. */
  args?: TSchema;
  description?: string;
}

export interface HandlerOutcome {
  result: JsonValue;
  data: JsonObject;
  changed: boolean;
}

/** Who the handler runs for: everything of the context but the data. */
export type HandlerMeta = Omit<HandlerContext, 'data' | 'now'>;

/**
 * What runs handlers for the worker: the built-in registry in process, or an external handler
 * container (contract/external.ts, docs/handler-contract.md).
 */
export interface HandlerExecutor {
  /** Fails fast, before any store round trip, on what can be known without the session. */
  validate(name: string, args: JsonValue): void;
  run(name: string, args: JsonValue, data: JsonValue, meta: HandlerMeta): Promise<HandlerOutcome>;
  describe(): { name: string; description: string }[] | Promise<{ name: string; description: string }[]>;
  /**
   * False when a run may have effects outside the session (a language-model call): the worker
   * then never re-runs it on a version conflict but answers 409 CONFLICT.
   */
  readonly rerunOnConflict: boolean;
  /** The handler label of the worker's metrics for a name (default: the name, validated before). */
  metricLabel?(name: string): string;
  /** When set, the worker runs each request of one session through it, one at a time. */
  exclusive?<T>(sessionId: string, work: () => Promise<T>): Promise<T>;
}

export class HandlerRegistry implements HandlerExecutor {
  /** Built-in handlers are pure functions of (data, args): re-running one is safe. */
  readonly rerunOnConflict = true;
  private readonly handlers = new Map<string, Registered>();

  register(name: string, run: Handler, options: RegisterOptions = {}): this {
    if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(name)) throw new Error(`invalid handler name '${name}'`);
    const registered: Registered = { run, description: options.description ?? '' };
    if (options.args) {
      const validator = Compile(options.args);
      registered.check = (args) => {
        if (validator.Check(args)) return undefined;
        return [...validator.Errors(args)]
          .slice(0, 5)
          .map((e) => `${e.instancePath || '/'} ${e.message}`)
          .join('; ');
      };
    }
    this.handlers.set(name, registered);
    return this;
  }

  has(name: string): boolean {
    return this.handlers.has(name);
  }

  names(): string[] {
    return [...this.handlers.keys()].sort();
  }

  describe(): { name: string; description: string }[] {
    return this.names().map((name) => ({ name, description: this.handlers.get(name)?.description ?? '' }));
  }

  /** Fails fast (before any store round trip) on an unknown handler or invalid args. */
  validate(name: string, args: JsonValue): void {
    const handler = this.handlers.get(name);
    if (!handler) throw new WorkerError('UNKNOWN_HANDLER', `unknown handler '${name}'; known: ${this.names().join(', ')}`);
    const problem = handler.check?.(args);
    if (problem !== undefined) throw new WorkerError('INVALID_ARGS', `invalid args for handler '${name}': ${problem}`);
  }

  /** Runs a handler on a copy of the session data. */
  async run(name: string, args: JsonValue, data: JsonValue, meta: HandlerMeta): Promise<HandlerOutcome> {
    this.validate(name, args);
    const handler = this.handlers.get(name) as Registered;
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new WorkerError('INVALID_SESSION_DATA', 'session data is not a JSON object; handlers need an object');
    }
    const before = JSON.stringify(data);
    const ctx: HandlerContext = { ...meta, data: JSON.parse(before) as JsonObject, now: Date.now() };
    let result: JsonValue;
    try {
      result = await handler.run(ctx, args);
    } catch (error) {
      if (error instanceof WorkerError) throw error;
      if (error instanceof HandlerError) {
        throw new WorkerError(
          'HANDLER_ERROR',
          `handler '${name}': ${error.message}`,
          error.details === undefined ? {} : { details: error.details },
        );
      }
      // Not a HandlerError: a bug, whose text is for the worker's log, not for the client.
      throw new WorkerError('HANDLER_ERROR', `handler '${name}' failed unexpectedly (the worker logged why)`, { cause: error });
    }
    if (ctx.data === null || typeof ctx.data !== 'object' || Array.isArray(ctx.data)) {
      throw new WorkerError('HANDLER_ERROR', `handler '${name}' left session data that is not an object`);
    }
    const after = JSON.stringify(ctx.data);
    return { result: result === undefined ? null : result, data: ctx.data, changed: after !== before };
  }
}

// ---- built-in handlers ----------------------------------------------------------------
// Keys come from clients, so they are read and written as own properties only: `obj[key]`
// would find Object.prototype's 'constructor' or 'toString', and `obj['__proto__'] = v`
// would replace the prototype instead of storing a key.

/** An own property of a JSON object, never an inherited one. */
export function ownValue(obj: JsonObject, key: string): JsonValue | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Sets an own, enumerable property; also for '__proto__'. */
export function setOwn(obj: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

function section(data: JsonObject, key: string): JsonObject {
  const value = ownValue(data, key);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value;
  if (value !== undefined) throw new HandlerError(`session field '${key}' is not an object`);
  const created: JsonObject = {};
  setOwn(data, key, created);
  return created;
}

export interface ProgramSignature {
  inputs: string[];
  outputs: string[];
}

/** Parses a DSPy-style signature "question, context -> answer, confidence". */
export function parseSignature(signature: string): ProgramSignature {
  const parts = signature.split('->');
  if (parts.length !== 2) throw new HandlerError(`signature '${signature}' must have the form 'in1, in2 -> out1'`);
  const fields = (text: string) =>
    text
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
  const inputs = fields(parts[0] ?? '');
  const outputs = fields(parts[1] ?? '');
  const bad = [...inputs, ...outputs].find((f) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(f));
  if (bad !== undefined) throw new HandlerError(`signature field '${bad}' is not an identifier`);
  if (outputs.length === 0) throw new HandlerError(`signature '${signature}' has no output field`);
  return { inputs, outputs };
}

/**
 * The toy evaluation of a program: deterministic, so that any worker running the same
 * program on the same inputs answers the same. Each output field is derived from the
 * program's instructions and the inputs in signature order.
 */
export function evaluateProgram(program: { signature: string; instructions?: string }, inputs: JsonObject): JsonObject {
  const signature = parseSignature(program.signature);
  const missing = signature.inputs.filter((f) => !Object.hasOwn(inputs, f));
  if (missing.length > 0) throw new HandlerError(`missing inputs: ${missing.join(', ')}`);
  const rendered = signature.inputs.map((f) => `${f}=${JSON.stringify(ownValue(inputs, f))}`).join(', ');
  const outputs: JsonObject = {};
  for (const field of signature.outputs) {
    setOwn(outputs, field, `${program.instructions ? `${program.instructions}: ` : ''}${field} of (${rendered})`);
  }
  return outputs;
}

const ProgramArgs = Type.Object(
  {
    programId: Type.String({ minLength: 1, maxLength: 128 }),
    signature: Type.String({ minLength: 3, maxLength: 1024 }),
    instructions: Type.Optional(Type.String({ maxLength: 4096 })),
  },
  { additionalProperties: false },
);
const ExecuteProgramArgs = Type.Object(
  { programId: Type.String({ minLength: 1, maxLength: 128 }), inputs: Type.Record(Type.String(), Type.Unknown()) },
  { additionalProperties: false },
);
const KeyArgs = Type.Object({ key: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false });
const SetArgs = Type.Object({ key: Type.String({ minLength: 1, maxLength: 256 }), value: Type.Unknown() }, { additionalProperties: false });
const IncrArgs = Type.Object(
  { key: Type.String({ minLength: 1, maxLength: 256 }), by: Type.Optional(Type.Integer()) },
  { additionalProperties: false },
);
const NoArgs = Type.Union([Type.Null(), Type.Object({}, { additionalProperties: false })]);

interface StoredProgram extends JsonObject {
  signature: string;
  instructions: string | null;
  createdAt: number;
  executionCount: number;
  lastExecutedAt: number | null;
}

function storedProgram(programs: JsonObject, programId: string): StoredProgram {
  const program = ownValue(programs, programId);
  if (program === null || typeof program !== 'object' || Array.isArray(program) || program === undefined)
    throw new HandlerError(`program '${programId}' is not defined in this session`);
  if (typeof program.signature !== 'string') throw new HandlerError(`program '${programId}' has no signature`);
  return program as StoredProgram;
}

/** Registers the built-in handlers on a registry (a new one by default). */
export function builtinHandlers(registry = new HandlerRegistry()): HandlerRegistry {
  registry.register(
    'define_program',
    (ctx, args) => {
      const a = args as { programId: string; signature: string; instructions?: string };
      parseSignature(a.signature);
      const programs = section(ctx.data, 'programs');
      const previous = ownValue(programs, a.programId) as StoredProgram | undefined;
      const program: StoredProgram = {
        signature: a.signature,
        instructions: a.instructions ?? null,
        createdAt: previous?.createdAt ?? ctx.now,
        executionCount: previous?.executionCount ?? 0,
        lastExecutedAt: previous?.lastExecutedAt ?? null,
      };
      setOwn(programs, a.programId, program);
      return { programId: a.programId, signature: a.signature, redefined: previous !== undefined };
    },
    { args: ProgramArgs, description: 'store a program (a DSPy-style signature) in the session' },
  );
  registry.register(
    'execute_program',
    (ctx, args) => {
      const a = args as { programId: string; inputs: JsonObject };
      const program = storedProgram(section(ctx.data, 'programs'), a.programId);
      const outputs = evaluateProgram(
        { signature: program.signature, ...(program.instructions ? { instructions: program.instructions } : {}) },
        a.inputs,
      );
      program.executionCount = (typeof program.executionCount === 'number' ? program.executionCount : 0) + 1;
      program.lastExecutedAt = ctx.now;
      return { programId: a.programId, outputs, executionCount: program.executionCount, lastExecutedAt: ctx.now };
    },
    { args: ExecuteProgramArgs, description: 'run a stored program with inputs; counts executions' },
  );
  registry.register(
    'list_programs',
    (ctx) => {
      const programs = ctx.data.programs;
      if (programs === null || typeof programs !== 'object' || Array.isArray(programs) || programs === undefined) return { programs: [] };
      return {
        programs: Object.keys(programs)
          .sort()
          .map((programId) => {
            const p = programs[programId] as StoredProgram;
            return { programId, signature: p.signature, executionCount: p.executionCount, lastExecutedAt: p.lastExecutedAt };
          }),
      };
    },
    { args: NoArgs, description: 'list the programs of the session' },
  );
  registry.register(
    'get',
    (ctx, args) => {
      const { key } = args as { key: string };
      const vars = ctx.data.vars;
      const value =
        vars !== null && typeof vars === 'object' && !Array.isArray(vars) && vars !== undefined ? ownValue(vars, key) : undefined;
      return { key, value: value ?? null, exists: value !== undefined };
    },
    { args: KeyArgs, description: 'read a session variable' },
  );
  registry.register(
    'set',
    (ctx, args) => {
      const { key, value } = args as { key: string; value: JsonValue };
      setOwn(section(ctx.data, 'vars'), key, value ?? null);
      return { key, value: value ?? null };
    },
    { args: SetArgs, description: 'write a session variable' },
  );
  registry.register(
    'incr',
    (ctx, args) => {
      const { key, by = 1 } = args as { key: string; by?: number };
      const vars = section(ctx.data, 'vars');
      const current = ownValue(vars, key) ?? 0;
      if (typeof current !== 'number') throw new HandlerError(`variable '${key}' is not a number`);
      const value = current + by;
      // JSON has no Infinity: it would be stored as null.
      if (!Number.isFinite(value)) throw new HandlerError(`variable '${key}' would overflow to a non-finite number`);
      setOwn(vars, key, value);
      return { key, value };
    },
    { args: IncrArgs, description: 'add to a numeric session variable (default 1) and return the new value' },
  );
  registry.register('echo', (_ctx, args) => args, {
    description: 'result = args; changes nothing (the trivial handler of bench:worker and the contract docs)',
  });
  registry.register(
    'sleep',
    async (_ctx, args) => {
      const { ms } = args as { ms: number };
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { slept: ms };
    },
    {
      args: Type.Object({ ms: Type.Integer({ minimum: 0, maximum: 30_000 }) }, { additionalProperties: false }),
      description: 'wait (simulated work); changes nothing',
    },
  );
  return registry;
}
