/**
 * The `.java` files under the paths given to `scan`: folders are walked recursively, `.git` is
 * skipped, and `.gitignore` files are honoured the way git reads them — the ones between the
 * repository's root (the nearest folder above with a `.git`) and the scanned folder, the scanned
 * folder's own and every nested one below it, plus `.git/info/exclude`; a deeper file overrides a
 * shallower one, `!pattern` re-includes, and nothing below an ignored folder comes back. Files named
 * on the command line are scanned whatever their name and whatever `.gitignore` says. Symbolic links
 * to folders are not followed (no cycles); links to files are read.
 */
import { existsSync, statSync, type Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { UsageError } from './flags.ts';

export interface SourceFile {
  /** Absolute path. */
  path: string;
  /** As shown to a person: the argument it was named by, or that folder joined with its path below. */
  display: string;
  /** Relative to the scan's root, `/`-separated and percent-encoded (a SARIF artifact URI). */
  uri: string;
}

/** A folder that could not be listed; the walk goes on with the rest. */
export interface TreeProblem {
  display: string;
  uri: string;
  message: string;
}

export interface SourceTree {
  /** The deepest folder holding every input: what `uri`s are relative to. */
  root: string;
  files: SourceFile[];
  problems: TreeProblem[];
}

interface IgnoreLevel {
  /** Folder the rules are relative to. */
  dir: string;
  rules: Ignore;
}

const toPosix = (p: string) => p.split(sep).join('/');

/** Relative path as a URI reference: each segment percent-encoded, `/` between them. */
export function relativeUri(root: string, path: string): string {
  return toPosix(relative(root, path)).split('/').map(encodeURIComponent).join('/');
}

/** Git's answer for a path: the deepest level whose rules match it decides; later rules in a file win. */
function isIgnored(levels: readonly IgnoreLevel[], path: string, isDir: boolean): boolean {
  let ignored = false;
  for (const { dir, rules } of levels) {
    const rel = toPosix(relative(dir, path));
    if (!rel || rel.startsWith('..')) continue;
    const result = rules.test(isDir ? `${rel}/` : rel);
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

async function readIgnoreFile(dir: string, file: string): Promise<IgnoreLevel | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined; // absent or unreadable: git reads no rules from it either
  }
  return { dir, rules: ignore().add(text) };
}

/** The nearest folder at or above `dir` with a `.git` (folder, or file for worktrees and submodules). */
function repositoryRoot(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, '.git'))) return d;
    if (dirname(d) === d) return undefined;
  }
}

/** Rules that apply to `dir` from above it: info/exclude, then each .gitignore from the repo root down. */
async function inheritedLevels(dir: string): Promise<IgnoreLevel[]> {
  const repo = repositoryRoot(dir);
  if (!repo) return [];
  const levels: IgnoreLevel[] = [];
  const exclude = await readIgnoreFile(repo, join(repo, '.git', 'info', 'exclude'));
  if (exclude) levels.push(exclude);
  const chain: string[] = [];
  if (dir !== repo) {
    for (let d = dirname(dir); ; d = dirname(d)) {
      chain.unshift(d);
      if (d === repo || dirname(d) === d) break;
    }
  }
  for (const d of chain) {
    const level = await readIgnoreFile(d, join(d, '.gitignore'));
    if (level) levels.push(level);
  }
  return levels;
}

function commonRoot(paths: readonly string[]): string {
  let root = paths[0];
  for (const p of paths.slice(1)) {
    while (root !== p && !p.startsWith(root.endsWith(sep) ? root : root + sep)) root = dirname(root);
  }
  return root;
}

/**
 * Every file to scan under `inputs` (files and folders), sorted and without duplicates. A path that
 * does not exist is a usage error; a folder that cannot be listed is a problem, and the walk goes on.
 */
export async function collectJavaSources(inputs: readonly string[], usage: string): Promise<SourceTree> {
  const kinds = inputs.map((input) => {
    try {
      return { input, path: resolve(input), isDir: statSync(input).isDirectory() };
    } catch (error) {
      throw new UsageError(`Cannot read ${input}: ${(error as Error).message}`, usage);
    }
  });
  const root = commonRoot(kinds.map((k) => (k.isDir ? k.path : dirname(k.path))));
  const files = new Map<string, SourceFile>();
  const problems: TreeProblem[] = [];

  const walk = async (dir: string, display: string, levels: IgnoreLevel[]) => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      problems.push({ display, uri: relativeUri(root, dir), message: (error as Error).message });
      return;
    }
    const own = entries.some((e) => e.name === '.gitignore' && !e.isDirectory())
      ? await readIgnoreFile(dir, join(dir, '.gitignore'))
      : undefined;
    const here = own ? [...levels, own] : levels;
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name === '.git') continue;
      const path = join(dir, entry.name);
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        // A link to a folder is not followed; a link to a file (or a dangling one) is read as a file.
        const target = await stat(path).catch(() => undefined);
        isDir = false;
        isFile = !target?.isDirectory();
      }
      if (isDir) {
        if (!isIgnored(here, path, true)) await walk(path, join(display, entry.name), here);
      } else if (isFile && entry.name.endsWith('.java') && !isIgnored(here, path, false)) {
        if (!files.has(path)) {
          files.set(path, { path, display: join(display, entry.name), uri: relativeUri(root, path) });
        }
      }
    }
  };

  for (const { input, path, isDir } of kinds) {
    if (!isDir) {
      if (!files.has(path)) files.set(path, { path, display: input, uri: relativeUri(root, path) });
      continue;
    }
    await walk(path, input, await inheritedLevels(path));
  }
  const sorted = [...files.values()].sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
  return { root, files: sorted, problems };
}
