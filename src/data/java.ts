/**
 * Java method extraction with java-parser (a full Java 21 grammar) and labelling rules for folders
 * and archives of `.java` files: by directory name or by Juliet test-suite method names.
 */
import { parse } from 'java-parser';
import { stripComments } from './normalize';
import type { Label } from './types';

export interface ExtractedMethod {
  /** Method or constructor name. */
  name: string;
  kind: 'method' | 'constructor';
  /** Source text from the first annotation/modifier to the closing brace. */
  code: string;
  /** 1-based line of the first character. */
  line: number;
  /** Names of the enclosing types, outermost first. */
  enclosing: string[];
}

export type ExtractResult = { ok: true; methods: ExtractedMethod[] } | { ok: false; message: string };

interface Node {
  name: string;
  children: Record<string, (Node | Tok)[]>;
  location: { startOffset: number; endOffset: number; startLine: number };
}
interface Tok {
  image: string;
  startOffset: number;
}

const METHOD_NODES = new Set([
  'methodDeclaration',
  'constructorDeclaration',
  'compactConstructorDeclaration',
  'interfaceMethodDeclaration',
]);
const CONSTRUCTORS = new Set(['constructorDeclaration', 'compactConstructorDeclaration']);
const TYPE_NODES: Record<string, string> = {
  normalClassDeclaration: 'typeIdentifier',
  enumDeclaration: 'typeIdentifier',
  recordDeclaration: 'typeIdentifier',
  normalInterfaceDeclaration: 'typeIdentifier',
};

function isNode(x: Node | Tok): x is Node {
  return (x as Node).children !== undefined;
}

function firstToken(n: Node | undefined, path: string[]): string | undefined {
  let cur: Node | Tok | undefined = n;
  for (const key of path) {
    if (!cur || !isNode(cur)) return undefined;
    cur = cur.children[key]?.[0];
  }
  return cur && !isNode(cur) ? cur.image : undefined;
}

/** First Identifier token below a node (depth-first, in source order). */
function firstIdentifier(n: Node): string | undefined {
  let best: Tok | undefined;
  const visit = (x: Node | Tok) => {
    if (!isNode(x)) {
      if ((!best || x.startOffset < best.startOffset) && /^[A-Za-z_$][\w$]*$/.test(x.image)) best = x;
      return;
    }
    for (const k in x.children) for (const c of x.children[k]) visit(c);
  };
  visit(n);
  return best?.image;
}

function hasBody(n: Node): boolean {
  if (CONSTRUCTORS.has(n.name)) return true;
  const body = n.children.methodBody?.[0];
  return !!body && isNode(body) && body.children.block !== undefined;
}

function methodName(n: Node): string {
  if (n.name === 'constructorDeclaration') {
    const decl = n.children.constructorDeclarator?.[0];
    return (decl && isNode(decl) && firstIdentifier(decl)) || '<init>';
  }
  if (n.name === 'compactConstructorDeclaration') {
    const id = n.children.simpleTypeName?.[0];
    return (id && isNode(id) && firstIdentifier(id)) || '<init>';
  }
  const header = n.children.methodHeader?.[0];
  if (header && isNode(header)) {
    const declarator = header.children.methodDeclarator?.[0];
    if (declarator && isNode(declarator)) return firstToken(declarator, ['Identifier']) ?? '?';
  }
  return '?';
}

/**
 * All methods and constructors with a body, outermost only (a method of an anonymous class inside
 * another method stays part of that method). Abstract/interface methods without a body are skipped.
 */
export function extractJavaMethods(source: string): ExtractResult {
  let cst: Node;
  try {
    cst = parse(source) as unknown as Node;
  } catch (e) {
    const message = e instanceof Error ? e.message.split('\n').slice(0, 2).join(' ').trim() : String(e);
    return { ok: false, message };
  }
  const methods: ExtractedMethod[] = [];
  const walk = (n: Node, enclosing: string[]) => {
    if (METHOD_NODES.has(n.name)) {
      if (!hasBody(n)) return;
      const { startOffset, endOffset, startLine } = n.location;
      methods.push({
        name: methodName(n),
        kind: CONSTRUCTORS.has(n.name) ? 'constructor' : 'method',
        code: source.slice(startOffset, endOffset + 1),
        line: startLine,
        enclosing,
      });
      return;
    }
    let inner = enclosing;
    const idKey = TYPE_NODES[n.name];
    if (idKey) {
      const id = n.children[idKey]?.[0];
      const name = id && isNode(id) ? firstIdentifier(id) : undefined;
      if (name) inner = [...enclosing, name];
    }
    for (const k in n.children) for (const c of n.children[k]) if (isNode(c)) walk(c, inner);
  };
  walk(cst, []);
  return { ok: true, methods };
}

/** Directory names that label the files below them (case-insensitive, deepest match wins). */
export const DIRECTORY_LABELS: Record<string, Label> = {
  vulnerable: 1,
  vuln: 1,
  vulnerabilities: 1,
  bad: 1,
  positive: 1,
  positives: 1,
  buggy: 1,
  '1': 1,
  safe: 0,
  fixed: 0,
  good: 0,
  benign: 0,
  clean: 0,
  negative: 0,
  negatives: 0,
  'non-vulnerable': 0,
  non_vulnerable: 0,
  notvulnerable: 0,
  patched: 0,
  '0': 0,
};

export function labelFromPath(path: string): Label | undefined {
  const dirs = path.split(/[\\/]/).slice(0, -1);
  for (let k = dirs.length - 1; k >= 0; k--) {
    const l = DIRECTORY_LABELS[dirs[k].toLowerCase()];
    if (l !== undefined) return l;
  }
  return undefined;
}

/** Juliet: `bad*` → 1; `good*` (incl. `goodG2B*`, `goodB2G*`) → 0; anything else (main, helpers) → undefined. */
export function julietLabel(methodName: string): Label | undefined {
  if (/^bad/.test(methodName)) return 1;
  if (/^good/.test(methodName)) return 0;
  return undefined;
}

/** `CWE89_SQL_Injection__…/x.java` → `CWE-89`. */
export function cweFromPath(path: string): string | undefined {
  const m = /CWE[-_]?(\d+)/i.exec(path);
  return m ? `CWE-${Number(m[1])}` : undefined;
}

/**
 * Remove the giveaways Juliet leaves in its test cases: all comments (FLAW / FIX / POTENTIAL FLAW …)
 * and identifiers that spell the answer (`bad`, `goodG2B1`, `badSink`, `CWE89_SQL_Injection__…`).
 * Giveaway identifiers are renamed consistently within one method.
 */
export function scrubGiveaways(code: string): string {
  const noComments = stripComments(code);
  const renames = new Map<string, string>();
  let n = 0;
  const rename = (id: string, prefix: string) => {
    let r = renames.get(id);
    if (!r) {
      r = `${prefix}${++n}`;
      renames.set(id, r);
    }
    return r;
  };
  // Only outside string literals: split on literals and rewrite the code parts.
  return noComments
    .split(/("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')/)
    .map((part, k) =>
      k % 2 === 1
        ? part
        : part
            .replace(/\bCWE\d+_\w*/g, (id) => rename(id, 'Case'))
            .replace(/\b(?:bad|good)(?:G2B|B2G)?\w*/gi, (id) => rename(id, 'process'))
            .replace(/\b\w*(?:Bad|Good)(?:G2B|B2G)?\w*\b/g, (id) => rename(id, 'process')),
    )
    .join('');
}
