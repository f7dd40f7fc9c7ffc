/**
 * A restricted unpickler for PyTorch state dicts. It implements only the opcodes `torch.save` emits
 * for a state dict (protocols 2–4) and only these globals:
 *   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
 *   torch.{Float,Half,BFloat16}Storage.
 * Nothing is ever called or imported: globals become inert markers, REDUCE on a marker builds a plain
 * value, and any other global or opcode is rejected with a typed error naming it.
 */
import { UnsafePickleError } from './errors.ts';

export type StorageDtype = 'F32' | 'F16' | 'BF16';

const ALLOWED_GLOBALS: Record<string, string> = {
  'collections.OrderedDict': 'OrderedDict',
  'torch._utils._rebuild_tensor_v2': 'rebuild_tensor_v2',
  'torch._utils._rebuild_parameter': 'rebuild_parameter',
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
};

class GlobalRef {
  constructor(readonly kind: string) {}
}

/** A persistent storage reference: ('storage', StorageType, key, location, numel). */
export interface StorageRef {
  readonly type: 'storage';
  key: string;
  dtype: StorageDtype;
  numel: number;
}

/** A tensor view of a storage, as `_rebuild_tensor_v2` would build it. */
export interface TensorRef {
  readonly type: 'tensor';
  storage: StorageRef;
  /** In elements. */
  storageOffset: number;
  shape: number[];
  stride: number[];
}

export type PickleValue =
  | null
  | boolean
  | number
  | string
  | PickleValue[]
  | Map<PickleValue, PickleValue>
  | TensorRef
  | StorageRef
  | GlobalRef;

const OPNAMES: Record<number, string> = {
  0x80: 'PROTO',
  0x95: 'FRAME',
  0x7d: 'EMPTY_DICT',
  0x5d: 'EMPTY_LIST',
  0x29: 'EMPTY_TUPLE',
  0x28: 'MARK',
  0x58: 'BINUNICODE',
  0x8c: 'SHORT_BINUNICODE',
  0x55: 'SHORT_BINSTRING',
  0x54: 'BINSTRING',
  0x51: 'BINPERSID',
  0x63: 'GLOBAL',
  0x93: 'STACK_GLOBAL',
  0x74: 'TUPLE',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x4b: 'BININT1',
  0x4d: 'BININT2',
  0x4a: 'BININT',
  0x8a: 'LONG1',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x4e: 'NONE',
  0x52: 'REDUCE',
  0x75: 'SETITEMS',
  0x73: 'SETITEM',
  0x62: 'BUILD',
  0x65: 'APPENDS',
  0x61: 'APPEND',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x68: 'BINGET',
  0x6a: 'LONG_BINGET',
  0x94: 'MEMOIZE',
  0x47: 'BINFLOAT',
  0x2e: 'STOP',
};

/** Unpickles `bytes` under the restrictions above. `file` names the source in errors. */
export function restrictedUnpickle(bytes: Uint8Array, file: string): PickleValue {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  let stack: PickleValue[] = [];
  const metastack: PickleValue[][] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;
  const bad = (msg: string): never => {
    throw new UnsafePickleError('bad-pickle', file, `${msg} (at byte ${pos}).`);
  };
  const need = (n: number): void => {
    if (pos + n > bytes.length) bad('pickle ends unexpectedly');
  };
  const u8 = (): number => (need(1), bytes[pos++]);
  const u16 = (): number => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const u32 = (): number => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const take = (n: number): Uint8Array => (need(n), (pos += n), bytes.subarray(pos - n, pos));
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) bad('unterminated GLOBAL');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    if (stack.length === 0) bad('stack underflow');
    return stack.pop()!;
  };
  const popMark = (): PickleValue[] => {
    const items = stack;
    if (metastack.length === 0) bad('MARK missing');
    stack = metastack.pop()!;
    return items;
  };
  const global = (module: string, name: string): GlobalRef => {
    const kind = ALLOWED_GLOBALS[`${module}.${name}`];
    if (!kind) {
      throw new UnsafePickleError(
        'forbidden-global',
        file,
        `pickle references the global ${module}.${name}, which a plain state dict never contains; refusing to load it.`,
      );
    }
    return new GlobalRef(kind);
  };
  const top = (): PickleValue => (stack.length === 0 ? bad('stack underflow') : stack[stack.length - 1]);

  for (;;) {
    const opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) bad('unsupported pickle protocol');
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x58: // BINUNICODE
        stack.push(decodeUtf8(utf8, take(u32()), bad));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(decodeUtf8(utf8, take(u8()), bad));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1.decode(take(u32())));
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: {
        // BINPERSID
        stack.push(persistentLoad(pop(), bad));
        break;
      }
      case 0x74: {
        // TUPLE (popMark replaces `stack`, so take the items first)
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x85:
        stack.push([pop()]);
        break;
      case 0x86: {
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x8a: {
        // LONG1
        const n = u8();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
          bad('integer too large');
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4e:
        stack.push(null);
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args, bad));
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        const d = top();
        if (!(d instanceof Map)) bad('SETITEM on a non-dict');
        (d as Map<PickleValue, PickleValue>).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = top();
        if (!(d instanceof Map) || items.length % 2 !== 0) bad('SETITEMS on a non-dict');
        for (let i = 0; i < items.length; i += 2)
          (d as Map<PickleValue, PickleValue>).set(items[i], items[i + 1]);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) bad('APPEND on a non-list');
        (l as PickleValue[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) bad('APPENDS on a non-list');
        (l as PickleValue[]).push(...items);
        break;
      }
      case 0x62: {
        // BUILD: only the `_metadata` state torch attaches to an OrderedDict; the state is dropped.
        pop();
        if (!(top() instanceof Map)) bad('BUILD on something other than a dict');
        break;
      }
      case 0x71:
        memo.set(u8(), top());
        break;
      case 0x72:
        memo.set(u32(), top());
        break;
      case 0x94:
        memo.set(memo.size, top());
        break;
      case 0x68:
      case 0x6a: {
        const idx = op === 0x68 ? u8() : u32();
        if (!memo.has(idx)) bad(`memo entry ${idx} missing`);
        stack.push(memo.get(idx)!);
        break;
      }
      case 0x2e: // STOP
        if (stack.length !== 1) bad('stack not empty at STOP');
        return stack[0];
      default: {
        const name = OPCODE_NAMES_ALL[op];
        throw new UnsafePickleError(
          'unknown-opcode',
          file,
          `pickle opcode ${name ? `${name} ` : ''}0x${op.toString(16).padStart(2, '0')} at byte ${opAt} is not allowed in a state dict.`,
        );
      }
    }
  }
}

/** Names of pickle opcodes the unpickler refuses, for error messages. */
const OPCODE_NAMES_ALL: Record<number, string> = {
  ...OPNAMES,
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
  0x49: 'INT',
  0x4c: 'LONG',
  0x46: 'FLOAT',
  0x53: 'STRING',
  0x56: 'UNICODE',
  0x70: 'PUT',
  0x67: 'GET',
  0x64: 'DICT',
  0x6c: 'LIST',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x8b: 'LONG4',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
};

function decodeUtf8(dec: InstanceType<typeof TextDecoder>, b: Uint8Array, bad: (m: string) => never): string {
  try {
    return dec.decode(b);
  } catch {
    return bad('invalid UTF-8 string');
  }
}

function persistentLoad(pid: PickleValue, bad: (m: string) => never): StorageRef {
  if (
    !Array.isArray(pid) ||
    pid.length !== 5 ||
    pid[0] !== 'storage' ||
    !(pid[1] instanceof GlobalRef) ||
    typeof pid[2] !== 'string' ||
    typeof pid[4] !== 'number'
  ) {
    return bad('persistent id is not a storage reference');
  }
  const dtype = pid[1].kind;
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') return bad('persistent id has no storage type');
  return { type: 'storage', key: pid[2], dtype, numel: pid[4] };
}

function isIntArray(v: PickleValue): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0);
}

function reduce(fn: PickleValue, args: PickleValue, bad: (m: string) => never): PickleValue {
  if (!(fn instanceof GlobalRef) || !Array.isArray(args)) return bad('REDUCE of a non-callable');
  switch (fn.kind) {
    case 'OrderedDict':
      if (args.length !== 0) bad('OrderedDict with arguments');
      return new Map();
    case 'rebuild_tensor_v2': {
      const [storage, offset, size, stride] = args;
      if (
        args.length < 6 ||
        typeof storage !== 'object' ||
        storage === null ||
        (storage as StorageRef).type !== 'storage' ||
        typeof offset !== 'number' ||
        !isIntArray(size) ||
        !isIntArray(stride) ||
        size.length !== stride.length
      ) {
        return bad('malformed _rebuild_tensor_v2 arguments');
      }
      return { type: 'tensor', storage: storage as StorageRef, storageOffset: offset, shape: size, stride };
    }
    case 'rebuild_parameter': {
      const t = args[0];
      if (typeof t !== 'object' || t === null || (t as TensorRef).type !== 'tensor') {
        return bad('malformed _rebuild_parameter arguments');
      }
      return t;
    }
    default:
      return bad(`${fn.kind} is not callable`);
  }
}
