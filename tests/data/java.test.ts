import { describe, expect, it } from 'vitest';
import {
  cweFromPath,
  extractJavaMethods,
  julietLabel,
  labelFromPath,
  scrubGiveaways,
} from '../../src/data/java';
import { collapseWhitespace, duplicateKey, normalizeCode, stripComments } from '../../src/data/normalize';

const SOURCE = `package com.example;

import java.util.*;

/** Service. */
@Service
public class UserService {
    private final Db db;

    /** Creates it. */
    @Inject
    public UserService(Db db) {
        this.db = db;
    }

    @Override
    @SuppressWarnings("unchecked")
    public synchronized List<User> find(final String name) {
        Runnable r = new Runnable() {
            @Override public void run() { System.out.println("{"); }
        };
        return db.query("SELECT * FROM u WHERE n = ?", name);
    }

    abstract static class Base {
        abstract void hook();
        protected <T> T id(T x) { return x; }
    }

    interface Visitor {
        void visit(Object o);
        default String name() { return "v"; }
    }

    enum Mode { A, B; boolean on() { return this == A; } }

    record Pair(int a, int b) {
        Pair {
            if (a > b) throw new IllegalArgumentException();
        }
    }
}
`;

describe('extractJavaMethods', () => {
  it('extracts methods and constructors with bodies, starting at annotations and modifiers', () => {
    const r = extractJavaMethods(SOURCE);
    if (!r.ok) throw new Error(r.message);
    expect(r.methods.map((m) => [m.kind, m.name, m.enclosing.join('.')])).toEqual([
      ['constructor', 'UserService', 'UserService'],
      ['method', 'find', 'UserService'],
      ['method', 'id', 'UserService.Base'],
      ['method', 'name', 'UserService.Visitor'],
      ['method', 'on', 'UserService.Mode'],
      ['constructor', 'Pair', 'UserService.Pair'],
    ]);
    const find = r.methods[1];
    expect(
      find.code.startsWith('@Override\n    @SuppressWarnings("unchecked")\n    public synchronized'),
    ).toBe(true);
    expect(find.code.endsWith('return db.query("SELECT * FROM u WHERE n = ?", name);\n    }')).toBe(true);
    expect(find.code).toContain('public void run()'); // the anonymous class stays inside
    expect(find.line).toBe(16);
    expect(r.methods[0].code.startsWith('@Inject')).toBe(true);
    // every extracted method parses again as a class member
    const wrap: Record<string, string> = {
      UserService: 'class UserService { # }',
      Base: 'abstract class Base { # }',
      Visitor: 'interface Visitor { # }',
      Mode: 'enum Mode { A, B; # }',
      Pair: 'record Pair(int a, int b) { # }',
    };
    for (const m of r.methods) {
      const again = extractJavaMethods(wrap[m.enclosing.at(-1)!].replace('#', m.code));
      expect(again.ok && again.methods.map((x) => x.code)).toEqual([m.code]);
    }
  });

  it('returns the parser message for files that do not parse', () => {
    const r = extractJavaMethods('public class A { void f() { int x = ; } }');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(/line: 1/);
  });
});

describe('labelling rules', () => {
  it('labels by the deepest directory name', () => {
    expect(labelFromPath('data/vulnerable/A.java')).toBe(1);
    expect(labelFromPath('data/Safe/A.java')).toBe(0);
    expect(labelFromPath('safe/x/fixed/bad/A.java')).toBe(1);
    expect(labelFromPath('src/main/A.java')).toBeUndefined();
    expect(labelFromPath('vulnerable.java')).toBeUndefined();
  });
  it('labels Juliet method names', () => {
    expect(
      ['bad', 'badSink', 'good', 'goodG2B', 'goodB2G2', 'goodG2BSink', 'main', 'helper'].map(julietLabel),
    ).toEqual([1, 1, 0, 0, 0, 0, undefined, undefined]);
    expect(cweFromPath('testcases/CWE78_OS_Command_Injection/s01/x.java')).toBe('CWE-78');
  });
  it('scrubs comments and giveaway names consistently but leaves literals alone', () => {
    const s = scrubGiveaways(
      'private void goodG2B() { /* FIX */ String data = "bad"; // POTENTIAL FLAW\n goodG2BSink(data); (new CWE89_X_01_bad()).badSink(data); goodG2BSink(data); }',
    );
    expect(s).not.toMatch(/good|FIX|FLAW|CWE89|badSink/);
    expect(s).toContain('"bad"');
    const calls = s.match(/process\d+\(data\)/g)!;
    expect(calls[0]).toBe(calls[2]); // same name → same replacement
  });
});

describe('normalization', () => {
  const code = `/** Doc with // and "quotes" */
@Override
public int f(int a) { // trailing
    String u = "http://x/*y*/";   char q = '"';
    /* block
       two lines */
    int b = a/**/+1;


    return b;
}`;
  it('strips comments but never touches literals', () => {
    expect(stripComments(code)).toBe(
      '@Override\npublic int f(int a) {\n    String u = "http://x/*y*/";   char q = \'"\';\n    int b = a +1;\n\n\n    return b;\n}',
    );
  });
  it('collapses whitespace outside literals', () => {
    expect(collapseWhitespace('int  x =\n\t"a   b" ;\n// c  d\n  y();')).toBe(
      'int x = "a   b" ; // c  d\ny();',
    );
    expect(normalizeCode(code, { stripComments: true, collapseWhitespace: true })).toBe(
      '@Override public int f(int a) { String u = "http://x/*y*/"; char q = \'"\'; int b = a +1; return b; }',
    );
  });
  it('duplicate keys ignore comments and formatting only', () => {
    expect(duplicateKey(code)).toBe(
      duplicateKey(normalizeCode(code, { stripComments: true, collapseWhitespace: true })),
    );
    expect(duplicateKey('f("a  b");')).not.toBe(duplicateKey('f("a b");'));
    expect(duplicateKey('int ab;')).not.toBe(duplicateKey('int a b;'));
  });
});
