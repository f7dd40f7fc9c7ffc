/**
 * Generates the embedded demo dataset: public/demo/java-vulns.jsonl (dataset card: public/demo/README.md).
 *
 *   npx tsx scripts/make-demo-dataset.ts [--seed 2401] [--pairs 390] [--out public/demo/java-vulns.jsonl] [--no-check]
 *
 * Each line is one Java method: {"code", "target" (1 vulnerable / 0 not), "cwe", "project", "split"}.
 * Methods come in pairs: a vulnerable version and a fixed version of the same method (consecutive
 * records), as in the paper's balanced dataset. The two versions share their signature, preamble and
 * business logic; only the security-relevant core differs.
 *
 * Every family has several vulnerable idioms and several fixed idioms, drawn independently for each
 * pair, and the idioms share their API names across the two sides (`executeQuery` with concatenation
 * or with bound parameters, `Runtime.exec` and `ProcessBuilder` with a shell string or with an argument
 * vector, `Cipher.getInstance` with ECB, a constant IV or a random IV …), so that no single token gives
 * the label away; the label follows from a few local, visible patterns (what is concatenated into a
 * query, whether a shell is involved, whether a check throws). tests/data/demo.test.ts checks that no
 * lexical or BPE token separates the classes within a family.
 *
 * Families (CWE): SQL injection (89), OS command injection (78), LDAP injection (90), XPath injection
 * (643), path traversal (22), XSS (79), weak hash (328), weak cipher (327), weak random (330),
 * XXE (611), insecure deserialization (502), hard-coded credentials (798), missing authorization (862).
 *
 * Variety: identifiers drawn from pools, per-project style (indent unit, brace placement, logger
 * name), optional Javadoc and annotations, and a shared preamble (null and length checks, logging,
 * metrics). No label-independent business-logic filler: methods stay short (about 160 tokens at the
 * median), so the demo model sees the security-relevant core often enough to learn it in a few
 * minutes (with filler blocks it needed twice the epochs; scripts/demo-model/README.md).
 *
 * Every method compiles: scripts/check-demo-compiles.ts wraps each one in a class over a stub
 * compilation unit and runs javac; writing the dataset runs that check (skip with --no-check).
 *
 * Splits are grouped by project (both versions of a method live in the same project), so no
 * project — and no vulnerable/fixed pair — sits on both sides of a split. Deterministic from the seed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Rng } from '../src/engine/random';
import { assignSplits } from '../src/data/splits';
import type { DataRecord } from '../src/data/types';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

export interface DemoOptions {
  seed: number;
  pairs: number;
}

/** The committed public/demo/java-vulns.jsonl (the demo model's pretraining corpus leaves these methods out). */
export const DEMO_DATASET: DemoOptions = { seed: 2401, pairs: 390 };

interface Style {
  indent: string;
  allman: boolean;
  logger: string;
  finalParams: boolean;
}

class Gen {
  constructor(
    readonly rng: Rng,
    readonly style: Style,
  ) {}
  pick<T>(items: readonly T[]): T {
    return items[this.rng.int(items.length)];
  }
  chance(p: number): boolean {
    return this.rng.next() < p;
  }
  int(lo: number, hi: number): number {
    return lo + this.rng.int(hi - lo + 1);
  }
  get log(): string {
    return this.style.logger;
  }
  param(type: string, name: string): string {
    return `${this.style.finalParams ? 'final ' : ''}${type} ${name}`;
  }
}

/** Entity names; the compile check declares a class (and repository, DTO, request, summary) for each. */
export const DEMO_ENTITIES = [
  'user',
  'account',
  'order',
  'invoice',
  'customer',
  'product',
  'report',
  'ticket',
  'employee',
  'patient',
  'device',
  'shipment',
  'contract',
  'payment',
  'tenant',
  'member',
];
const ENTITIES = DEMO_ENTITIES;
/** Columns; the compile check gives every entity a String getter for each. */
export const DEMO_COLUMNS = [
  'name',
  'email',
  'status',
  'code',
  'region',
  'owner',
  'title',
  'category',
  'reference',
];
const COLUMNS = DEMO_COLUMNS;
const cap = (s: string) => s[0].toUpperCase() + s.slice(1);

// ---------------------------------------------------------------- shared business logic

/** Lines before the security-relevant core. */
function preamble(g: Gen, params: string[]): string[] {
  const out: string[] = [];
  for (const p of params) {
    const r = g.rng.next();
    if (r < 0.25) out.push(`Objects.requireNonNull(${p}, "${p}");`);
    else if (r < 0.4)
      out.push(
        `if (${p} == null || ${p}.isEmpty()) {`,
        `    throw new IllegalArgumentException("${p} is required");`,
        '}',
      );
    else if (r < 0.5)
      out.push(
        `if (${p}.length() > ${g.pick([64, 128, 255, 1024])}) {`,
        `    throw new IllegalArgumentException("${p} too long");`,
        '}',
      );
  }
  if (g.chance(0.45))
    out.push(
      `${g.log}.debug("${g.pick(['handling', 'processing', 'start', 'request for'])} {}", ${params[0] ?? '""'});`,
    );
  if (g.chance(0.2)) out.push(`metrics.counter("${g.pick(ENTITIES)}.calls").increment();`);
  return out;
}

interface Pair {
  cwe: string;
  vulnerable: string[];
  fixed: string[];
}

type Idiom = () => string[];

/** Word-level difference of two versions (the measure tests/data/demo.test.ts bounds from below). */
function wordDiff(a: string[], b: string[]): number {
  const x = a.join('\n').split(/\W+/);
  const y = b.join('\n').split(/\W+/);
  return Math.abs(x.length - y.length) + x.filter((t, k) => y[k] !== t).length;
}

/**
 * One vulnerable and one fixed idiom, drawn independently; the fixed one is drawn again while the two
 * differ in a single word (a real fix can flip one `false` to `true`, but a pair must not hinge on it).
 */
function draw(g: Gen, vulnerable: Idiom[], fixed: Idiom[]): { vulnerable: string[]; fixed: string[] } {
  const v = g.pick(vulnerable)();
  let f = g.pick(fixed)();
  while (wordDiff(v, f) <= 1) f = g.pick(fixed)();
  return { vulnerable: v, fixed: f };
}

/** Wrap core lines in a method with a shared preamble; the two versions differ only in `core`. */
function method(
  g: Gen,
  header: string,
  params: string[],
  cores: { vulnerable: string[]; fixed: string[] },
  opts: { throws?: string; doc?: string } = {},
): { vulnerable: string[]; fixed: string[] } {
  const pre = preamble(
    g,
    params.filter((p) => /^(final )?String /.test(p)).map((p) => p.split(' ').pop()!),
  );
  const docLines: string[] = [];
  if (opts.doc && g.chance(0.4)) {
    docLines.push('/**', ` * ${opts.doc}`);
    for (const p of params)
      if (g.chance(0.5)) docLines.push(` * @param ${p.split(' ').pop()} the ${p.split(' ').pop()}`);
    docLines.push(' */');
  }
  const annotations = g.chance(0.15)
    ? [g.pick(['@Transactional', '@Timed', '@Transactional(readOnly = true)'])]
    : [];
  const sig = `${header}(${params.join(', ')})${opts.throws ? ` throws ${opts.throws}` : ''} {`;
  const build = (core: string[]) => [
    ...docLines,
    ...annotations,
    sig,
    ...[...pre, ...core].map((l) => '    ' + l),
    '}',
  ];
  return { vulnerable: build(cores.vulnerable), fixed: build(cores.fixed) };
}

// ---------------------------------------------------------------- families

function sqlInjection(g: Gen): Pair {
  const e = g.pick(ENTITIES);
  const E = cap(e);
  const col = g.pick(COLUMNS);
  const table = g.pick([`${e}s`, `${e}_table`, `t_${e}`, `app_${e}s`]);
  const p = g.pick([col, `${col}Filter`, 'value', 'term', `${e}${cap(col)}`]);
  const lim = g.pick(['limit', 'maxRows', 'pageSize']);
  const conn = g.pick(['conn', 'connection', 'dbConnection']);
  const rs = g.pick(['rs', 'results', 'resultSet']);
  const list = g.pick(['found', 'items', 'rows', `${e}s`]);
  const tpl = g.pick(['jdbcTemplate', 'jdbc', 'template']);
  const select = `SELECT id, ${col} FROM ${table}`;
  const other = g.pick(COLUMNS.filter((c) => c !== col));
  const mapLoop = [
    `List<${E}> ${list} = new ArrayList<>();`,
    `while (${rs}.next()) {`,
    `    ${list}.add(new ${E}(${rs}.getLong("id"), ${rs}.getString("${col}")));`,
    `}`,
    `return ${list};`,
  ];
  const mapper = `(row, n) -> new ${E}(row.getLong("id"), row.getString("${col}"))`;
  const vulnerable: Idiom[] = [
    () => [
      `Statement stmt = ${conn}.createStatement();`,
      `String sql = "${select} WHERE ${col} = '" + ${p} + "' LIMIT " + ${lim};`,
      `ResultSet ${rs} = stmt.executeQuery(sql);`,
      ...mapLoop,
    ],
    () => [
      `PreparedStatement ps = ${conn}.prepareStatement("${select} WHERE ${col} LIKE '%" + ${p} + "%' LIMIT ?");`,
      `ps.setInt(1, ${lim});`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ],
    () => [
      `String sql = String.format("${select} WHERE ${col} = '%s' LIMIT %d", ${p}, ${lim});`,
      `PreparedStatement ps = ${conn}.prepareStatement(sql);`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ],
    () => [
      `return ${tpl}.query("${select} WHERE ${col} = '" + ${p} + "' LIMIT " + ${lim},`,
      `        ${mapper});`,
    ],
    () => [
      `PreparedStatement ps = ${conn}.prepareStatement(`,
      `        "${select} WHERE ${col} = ? OR ${other} = '" + ${p} + "' LIMIT " + ${lim});`,
      `ps.setString(1, ${p});`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ],
  ];
  const fixed: Idiom[] = [
    () => [
      `PreparedStatement ps = ${conn}.prepareStatement("${select} WHERE ${col} = ? AND ${other} <> 'archived' LIMIT " + ${lim});`,
      `ps.setString(1, ${p});`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ],
    () => [
      `PreparedStatement ps = ${conn}.prepareStatement("${select} WHERE ${col} LIKE ? LIMIT ?");`,
      `ps.setString(1, "%" + ${p} + "%");`,
      `ps.setInt(2, ${lim});`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ],
    () => [
      `String sql = String.format("${select} WHERE ${col} = ? LIMIT %d", ${lim});`,
      `PreparedStatement ps = ${conn}.prepareStatement(sql);`,
      `ps.setString(1, ${p});`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ],
    () => [
      `return ${tpl}.query("${select} WHERE ${col} = ? AND ${other} <> 'deleted' LIMIT ?",`,
      `        ${mapper}, ${p}, ${lim});`,
    ],
    () => [
      `Statement stmt = ${conn}.createStatement();`,
      `String sql = "${select} WHERE id = " + Long.parseLong(${p}) + " LIMIT " + ${lim};`,
      `ResultSet ${rs} = stmt.executeQuery(sql);`,
      ...mapLoop,
    ],
  ];
  const m = method(
    g,
    `public List<${E}> ${g.pick(['find', 'search', 'load', 'lookup', 'fetch'])}${E}sBy${cap(col)}`,
    [g.param('String', p), g.param('int', lim)],
    draw(g, vulnerable, fixed),
    { throws: 'SQLException', doc: `Finds ${e}s by ${col}.` },
  );
  return { cwe: 'CWE-89', ...m };
}

function commandInjection(g: Gen): Pair {
  const what = g.pick(['host', 'target', 'address', 'server']);
  const proc = g.pick(['process', 'proc', 'child']);
  const tool = g.pick([
    ['ping', '-c', String(g.int(1, 4))],
    ['nslookup'],
    ['traceroute', '-m', String(g.int(5, 30))],
    ['dig', '+short'],
    ['whois'],
  ]);
  const shell = tool.join(' ') + ' ';
  const argv = tool.map((t) => `"${t}"`).join(', ');
  const read = [
    `StringBuilder output = new StringBuilder();`,
    `try (BufferedReader reader = new BufferedReader(new InputStreamReader(${proc}.getInputStream()))) {`,
    `    String line;`,
    `    while ((line = reader.readLine()) != null) {`,
    `        output.append(line).append('\\n');`,
    `    }`,
    `}`,
    `int exit = ${proc}.waitFor();`,
    `return exit == 0 ? output.toString() : "";`,
  ];
  const check = (pattern: string) => [
    `if (!${what}.matches("${pattern}")) {`,
    `    throw new IllegalArgumentException("invalid ${what}: " + ${what});`,
    `}`,
  ];
  const vulnerable: Idiom[] = [
    () => [`Process ${proc} = Runtime.getRuntime().exec("${shell}" + ${what});`, ...read],
    () => [
      `Process ${proc} = new ProcessBuilder("sh", "-c", "${shell}" + ${what}).redirectErrorStream(true).start();`,
      ...read,
    ],
    () => [
      `String[] cmd = {"/bin/bash", "-c", "${shell}" + ${what}};`,
      `Process ${proc} = Runtime.getRuntime().exec(cmd);`,
      ...read,
    ],
    () => [
      ...check('.{1,253}'),
      `Process ${proc} = new ProcessBuilder("sh", "-c", "${shell}" + ${what}).start();`,
      ...read,
    ],
  ];
  const fixed: Idiom[] = [
    () => [
      `Process ${proc} = new ProcessBuilder(${argv}, ${what}).redirectErrorStream(true).start();`,
      ...read,
    ],
    () => [
      `String[] cmd = {${argv}, ${what}};`,
      `Process ${proc} = Runtime.getRuntime().exec(cmd);`,
      ...read,
    ],
    () => [
      ...check('[A-Za-z0-9.-]{1,253}'),
      `Process ${proc} = Runtime.getRuntime().exec("${shell}" + ${what});`,
      ...read,
    ],
    () => [
      `List<String> cmd = new ArrayList<>(List.of(${argv}));`,
      `cmd.add(${what});`,
      `Process ${proc} = new ProcessBuilder(cmd).start();`,
      ...read,
    ],
  ];
  const m = method(
    g,
    `public String ${g.pick(['probe', 'check', 'resolve', 'query'])}${cap(what)}`,
    [g.param('String', what)],
    draw(g, vulnerable, fixed),
    { throws: 'IOException, InterruptedException', doc: 'Runs a network tool.' },
  );
  return { cwe: 'CWE-78', ...m };
}

function ldapInjection(g: Gen): Pair {
  const u = g.pick(['username', 'uid', 'login', 'account']);
  const ctx = g.pick(['ctx', 'dirContext', 'ldap']);
  const base = g.pick(['"ou=people,dc=example,dc=com"', 'baseDn', 'config.getUserBase()']);
  const res = g.pick(['results', 'answer', 'found']);
  const head = [
    `SearchControls controls = new SearchControls();`,
    `controls.setSearchScope(SearchControls.SUBTREE_SCOPE);`,
  ];
  const search = (filter: string, args = '') => [
    `NamingEnumeration<SearchResult> ${res} = ${ctx}.search(${base}, ${filter}, ${args}controls);`,
    `return ${res}.hasMore() ? ${res}.next().getAttributes() : null;`,
  ];
  const cls = g.pick(['person', 'inetOrgPerson', 'user']);
  const vulnerable: Idiom[] = [
    () => [...head, `String filter = "(&(objectClass=${cls})(uid=" + ${u} + "))";`, ...search('filter')],
    () => [
      ...head,
      `String filter = String.format("(&(objectClass=${cls})(uid=%s))", ${u});`,
      ...search('filter'),
    ],
    () => [...head, ...search(`"(|(uid=" + ${u} + ")(mail=" + ${u} + "))"`)],
    () => [
      ...head,
      `String filter = "(&(objectClass=${cls})(uid=" + ${u}.replace("*", "") + "))";`,
      ...search('filter'),
    ],
  ];
  const fixed: Idiom[] = [
    () => [
      ...head,
      `String filter = "(&(objectClass=${cls})(uid={0}))";`,
      ...search('filter', `new Object[] {${u}}, `),
    ],
    () => [
      ...head,
      `String filter = "(&(objectClass=${cls})(uid=" + LdapEncoder.filterEncode(${u}) + "))";`,
      ...search('filter'),
    ],
    () => [
      ...head,
      `String filter = String.format("(&(objectClass=${cls})(uid=%s))", LdapEncoder.filterEncode(${u}));`,
      ...search('filter'),
    ],
    () => [...head, ...search(`"(|(uid={0})(mail={0}))"`, `new Object[] {${u}}, `)],
  ];
  const m = method(
    g,
    `public Attributes ${g.pick(['findUser', 'lookupAccount', 'resolvePerson'])}`,
    [g.param('String', u)],
    draw(g, vulnerable, fixed),
    { throws: 'NamingException', doc: 'Looks a directory entry up.' },
  );
  return { cwe: 'CWE-90', ...m };
}

function xpathInjection(g: Gen): Pair {
  const name = g.pick(['user', 'login', 'name']);
  const pass = g.pick(['password', 'pass', 'secret']);
  const xp = g.pick(['xpath', 'xPath', 'xp']);
  const doc = g.pick(['usersDoc', 'document', 'userStore']);
  const root = g.pick(['users/user', 'accounts/account', 'directory/entry']);
  const head = [`XPath ${xp} = XPathFactory.newInstance().newXPath();`];
  const evaluate = [
    `Node node = (Node) ${xp}.evaluate(expr, ${doc}, XPathConstants.NODE);`,
    `return node != null;`,
  ];
  const concat = (n: string) =>
    `String expr = "/${root}[name='" + ${n} + "' and password='" + hash(${pass}) + "']";`;
  const resolver = `${xp}.setXPathVariableResolver(qn -> "name".equals(qn.getLocalPart()) ? ${name} : hash(${pass}));`;
  const vulnerable: Idiom[] = [
    () => [...head, concat(name), ...evaluate],
    () => [
      ...head,
      `String expr = String.format("/${root}[name='%s' and password='%s']", ${name}, hash(${pass}));`,
      ...evaluate,
    ],
    () => [...head, concat(`${name}.replace("\\"", "")`), ...evaluate],
  ];
  const fixed: Idiom[] = [
    () => [...head, resolver, `String expr = "/${root}[name=$name and password=$pw]";`, ...evaluate],
    () => [
      `if (!${name}.matches("[A-Za-z0-9_.-]{1,64}")) {`,
      `    return false;`,
      `}`,
      ...head,
      concat(name),
      ...evaluate,
    ],
    () => [
      ...head,
      resolver,
      `XPathExpression expr = ${xp}.compile("/${root}[name=$name and password=$pw]");`,
      `Node node = (Node) expr.evaluate(${doc}, XPathConstants.NODE);`,
      `return node != null;`,
    ],
  ];
  const m = method(
    g,
    `public boolean ${g.pick(['authenticate', 'checkCredentials', 'verifyLogin'])}`,
    [g.param('String', name), g.param('String', pass)],
    draw(g, vulnerable, fixed),
    { throws: 'XPathExpressionException', doc: 'Checks credentials against the XML store.' },
  );
  return { cwe: 'CWE-643', ...m };
}

function pathTraversal(g: Gen): Pair {
  const f = g.pick(['fileName', 'name', 'path', 'relativePath', 'attachment']);
  const base = g.pick(['baseDir', 'storageRoot', 'uploadDir', 'ROOT']);
  const ret = g.pick([
    [`return Files.readAllBytes(target);`],
    [`try (InputStream in = Files.newInputStream(target)) {`, `    return in.readAllBytes();`, `}`],
  ]);
  const deny = (what: string) => [`    throw new SecurityException("access outside " + ${what});`, `}`];
  const vulnerable: Idiom[] = [
    () => [`Path target = Paths.get(${base}.toString(), ${f});`, ...ret],
    () => [
      `Path target = ${base}.resolve(${f});`,
      `if (!target.startsWith(${base})) {`,
      ...deny(base),
      ...ret,
    ],
    () => [
      `String cleaned = ${f}.replace("../", "");`,
      `Path target = new File(${base}.toFile(), cleaned).toPath();`,
      ...ret,
    ],
    () => [`Path target = ${base}.resolve(${f}).normalize();`, ...ret],
  ];
  const fixed: Idiom[] = [
    () => [
      `Path root = ${base}.toRealPath();`,
      `Path target = root.resolve(${f}).normalize();`,
      `if (!target.startsWith(root)) {`,
      ...deny('root'),
      ...ret,
    ],
    () => [
      `String cleaned = Paths.get(${f}).getFileName().toString();`,
      `Path target = new File(${base}.toFile(), cleaned).toPath();`,
      ...ret,
    ],
    () => [
      `Path target = ${base}.resolve(${f}).normalize().toAbsolutePath();`,
      `if (!target.startsWith(${base}.toAbsolutePath().normalize())) {`,
      ...deny(base),
      ...ret,
    ],
    () => [
      `if (${f}.contains("..") || ${f}.startsWith("/") || ${f}.contains("\\\\")) {`,
      ...deny(f),
      `Path target = ${base}.resolve(${f});`,
      ...ret,
    ],
  ];
  const m = method(
    g,
    `public byte[] ${g.pick(['download', 'readAttachment', 'loadFile', 'serve'])}`,
    [g.param('String', f)],
    draw(g, vulnerable, fixed),
    { throws: 'IOException', doc: 'Returns the stored file.' },
  );
  return { cwe: 'CWE-22', ...m };
}

function xss(g: Gen): Pair {
  const v = g.pick(['name', 'query', 'comment', 'title', 'message']);
  const out = g.pick(['out', 'writer', 'w']);
  const items = g.pick(['comments', 'entries', 'posts']);
  const greet = g.pick(['Results for', 'Hello', 'You searched']);
  const head = [
    `String ${v} = request.getParameter("${v === 'query' ? 'q' : v}");`,
    `response.setContentType("text/html;charset=UTF-8");`,
    `PrintWriter ${out} = response.getWriter();`,
  ];
  const list = (author: string, text: string) => [
    ...head,
    `${out}.write("<ul>");`,
    `for (Comment c : ${items}Service.latest(${v})) {`,
    `    ${out}.write("<li>" + ${author} + ": " + ${text} + "</li>");`,
    `}`,
    `${out}.write("</ul>");`,
  ];
  const vulnerable: Idiom[] = [
    () => [...head, `${out}.println("<h2>${greet} " + ${v} + "</h2>");`],
    () => list('c.getAuthor()', 'c.getText()'),
    () => list('HtmlUtils.htmlEscape(c.getAuthor())', 'c.getText()'),
    () => [...head, `${out}.printf("<p>${greet} %s</p>%n", ${v});`],
  ];
  const fixed: Idiom[] = [
    () => [...head, `${out}.println("<h2>${greet} " + HtmlUtils.htmlEscape(${v}) + "</h2>");`],
    () => list('Encode.forHtml(c.getAuthor())', 'Encode.forHtml(c.getText())'),
    () => list('HtmlUtils.htmlEscape(c.getAuthor())', 'HtmlUtils.htmlEscape(c.getText())'),
    () => [...head, `${out}.printf("<p>${greet} %s</p>%n", Encode.forHtml(${v}));`],
  ];
  const m = method(
    g,
    `protected void ${g.pick(['doGet', 'doPost', 'render'])}`,
    [g.param('HttpServletRequest', 'request'), g.param('HttpServletResponse', 'response')],
    draw(g, vulnerable, fixed),
    { throws: 'IOException', doc: 'Renders the page.' },
  );
  return { cwe: 'CWE-79', ...m };
}

function weakHash(g: Gen): Pair {
  const pw = g.pick(['password', 'rawPassword', 'secret', 'pin']);
  const weak = g.pick(['MD5', 'SHA-1']);
  const b64 = `Base64.getEncoder().encodeToString`;
  const salted = `return ${b64}(salt) + ":" + ${b64}(digest);`;
  const pbkdf2 = (algorithm: string, iterations: number) => [
    `PBEKeySpec spec = new PBEKeySpec(${pw}.toCharArray(), salt, ${iterations}, 256);`,
    `SecretKeyFactory factory = SecretKeyFactory.getInstance("${algorithm}");`,
    `byte[] digest = factory.generateSecret(spec).getEncoded();`,
    `spec.clearPassword();`,
    salted,
  ];
  const algorithm = g.pick(['PBKDF2WithHmacSHA256', 'PBKDF2WithHmacSHA512']);
  const vulnerable: Idiom[] = [
    () => [
      `MessageDigest md = MessageDigest.getInstance("${weak}");`,
      `byte[] digest = md.digest(${pw}.getBytes(StandardCharsets.UTF_8));`,
      `return ${b64}(digest);`,
    ],
    () => [
      `MessageDigest md = MessageDigest.getInstance("${weak}");`,
      `md.update(salt);`,
      `byte[] digest = md.digest(${pw}.getBytes(StandardCharsets.UTF_8));`,
      salted,
    ],
    () => pbkdf2('PBKDF2WithHmacSHA1', g.pick([1, 100, 1000, 1024])),
    () => [
      `MessageDigest md = MessageDigest.getInstance("SHA-256");`,
      `md.update(salt);`,
      `byte[] digest = md.digest(${pw}.getBytes(StandardCharsets.UTF_8));`,
      salted,
    ],
  ];
  const fixed: Idiom[] = [
    () => pbkdf2(algorithm, g.pick([210000, 310000, 600000])),
    () => [`return passwordEncoder.encode(${pw});`],
    () => [`byte[] digest = argon2.hash(${g.int(2, 4)}, 65536, 1, ${pw}.toCharArray(), salt);`, salted],
  ];
  const m = method(
    g,
    `public String ${g.pick(['hashPassword', 'encode', 'digestCredential'])}`,
    [g.param('String', pw), g.param('byte[]', 'salt')],
    draw(g, vulnerable, fixed),
    { throws: 'GeneralSecurityException', doc: 'Hashes a credential for storage.' },
  );
  return { cwe: 'CWE-328', ...m };
}

function weakCipher(g: Gen): Pair {
  const data = g.pick(['plaintext', 'payload', 'data', 'record']);
  const key = g.pick(['key', 'secretKey', 'dataKey']);
  const simple = (transformation: string) => [
    `Cipher cipher = Cipher.getInstance("${transformation}");`,
    `cipher.init(Cipher.ENCRYPT_MODE, ${key});`,
    `return cipher.doFinal(${data});`,
  ];
  const withIv = (transformation: string, ivLen: number, fill: string[], spec: string) => [
    `byte[] iv = new byte[${ivLen}];`,
    ...fill,
    `Cipher cipher = Cipher.getInstance("${transformation}");`,
    `cipher.init(Cipher.ENCRYPT_MODE, ${key}, ${spec});`,
    `byte[] sealed = cipher.doFinal(${data});`,
    `return ByteBuffer.allocate(iv.length + sealed.length).put(iv).put(sealed).array();`,
  ];
  const vulnerable: Idiom[] = [
    () => simple(g.pick(['DES/ECB/PKCS5Padding', 'DESede/ECB/PKCS5Padding'])),
    () => simple('AES/ECB/PKCS5Padding'),
    () => simple('AES'),
    () => withIv('AES/GCM/NoPadding', 12, [], 'new GCMParameterSpec(128, iv)'),
    () => withIv('AES/CBC/PKCS5Padding', 16, [], 'new IvParameterSpec(iv)'),
  ];
  const fixed: Idiom[] = [
    () => withIv('AES/GCM/NoPadding', 12, [`secureRandom.nextBytes(iv);`], 'new GCMParameterSpec(128, iv)'),
    () => withIv('ChaCha20-Poly1305', 12, [`secureRandom.nextBytes(iv);`], 'new IvParameterSpec(iv)'),
    () =>
      withIv('AES/GCM/NoPadding', 12, [`new SecureRandom().nextBytes(iv);`], 'new GCMParameterSpec(128, iv)'),
    () => [
      `Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");`,
      `cipher.init(Cipher.ENCRYPT_MODE, ${key});`,
      `byte[] iv = cipher.getIV();`,
      `byte[] sealed = cipher.doFinal(${data});`,
      `return ByteBuffer.allocate(iv.length + sealed.length).put(iv).put(sealed).array();`,
    ],
  ];
  const m = method(
    g,
    `public byte[] ${g.pick(['encrypt', 'seal', 'protect'])}${cap(g.pick(ENTITIES))}`,
    [g.param('byte[]', data), g.param('SecretKey', key)],
    draw(g, vulnerable, fixed),
    { throws: 'GeneralSecurityException', doc: 'Encrypts data at rest.' },
  );
  return { cwe: 'CWE-327', ...m };
}

function weakRandom(g: Gen): Pair {
  const len = g.pick([16, 24, 32]);
  const purpose = g.pick(['resetToken', 'sessionId', 'apiKey', 'inviteCode']);
  const owner = g.pick(['userId', 'accountId', 'ownerId']);
  const bytes = (create: string[]) => [
    ...create,
    `byte[] bytes = new byte[${len}];`,
    `random.nextBytes(bytes);`,
    `String ${purpose} = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);`,
  ];
  const chars = (next: string) => [
    `StringBuilder sb = new StringBuilder();`,
    `for (int i = 0; i < ${len}; i++) {`,
    `    sb.append(ALPHABET.charAt(${next}));`,
    `}`,
    `String ${purpose} = sb.toString();`,
  ];
  const vulnerable: Idiom[] = [
    () => bytes([`Random random = new Random();`]),
    () => chars('(int) (Math.random() * ALPHABET.length())'),
    () => bytes([`Random random = new Random(System.currentTimeMillis());`]),
    () => chars('ThreadLocalRandom.current().nextInt(ALPHABET.length())'),
    () => bytes([`SecureRandom random = SecureRandom.getInstance("SHA1PRNG");`, `random.setSeed(${owner});`]),
  ];
  const fixed: Idiom[] = [
    () => bytes([`SecureRandom random = new SecureRandom();`]),
    () => chars('secureRandom.nextInt(ALPHABET.length())'),
    () => bytes([`SecureRandom random = SecureRandom.getInstanceStrong();`]),
    () => bytes([`Random random = SecureRandom.getInstance("NativePRNGNonBlocking");`]),
  ];
  const store = [
    `tokenStore.save(${owner}, ${purpose}, Instant.now().plus(Duration.ofHours(${g.int(1, 48)})));`,
    `return ${purpose};`,
  ];
  const cores = draw(g, vulnerable, fixed);
  const m = method(
    g,
    `public String ${g.pick(['issue', 'create', 'generate'])}${cap(purpose)}`,
    [g.param('long', owner)],
    { vulnerable: [...cores.vulnerable, ...store], fixed: [...cores.fixed, ...store] },
    { throws: 'GeneralSecurityException', doc: 'Issues a one-time token.' },
  );
  return { cwe: 'CWE-330', ...m };
}

function xxe(g: Gen): Pair {
  const input = g.pick(['input', 'xml', 'body', 'stream']);
  const dbf = g.pick(['factory', 'dbf', 'builderFactory']);
  const head = [
    `DocumentBuilderFactory ${dbf} = DocumentBuilderFactory.newInstance();`,
    `${dbf}.setNamespaceAware(true);`,
  ];
  const feature = (name: string, value: boolean) => `${dbf}.setFeature("http://${name}", ${value});`;
  const parse = [
    `Document doc = ${dbf}.newDocumentBuilder().parse(${input});`,
    `doc.getDocumentElement().normalize();`,
    `return doc.getElementsByTagName("${g.pick(['item', 'entry', 'order', 'record'])}").getLength();`,
  ];
  const vulnerable: Idiom[] = [
    () => [...head, ...parse],
    () => [...head, feature('apache.org/xml/features/disallow-doctype-decl', false), ...parse],
    () => [...head, `${dbf}.setExpandEntityReferences(false);`, ...parse],
    () => [...head, `${dbf}.setValidating(false);`, `${dbf}.setXIncludeAware(false);`, ...parse],
  ];
  const fixed: Idiom[] = [
    () => [...head, feature('apache.org/xml/features/disallow-doctype-decl', true), ...parse],
    () => [
      ...head,
      `${dbf}.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");`,
      `${dbf}.setAttribute(XMLConstants.ACCESS_EXTERNAL_SCHEMA, "");`,
      ...parse,
    ],
    () => [
      ...head,
      feature('xml.org/sax/features/external-general-entities', false),
      feature('xml.org/sax/features/external-parameter-entities', false),
      feature('apache.org/xml/features/nonvalidating/load-external-dtd', false),
      `${dbf}.setExpandEntityReferences(false);`,
      ...parse,
    ],
  ];
  const m = method(
    g,
    `public int ${g.pick(['countItems', 'importFeed', 'parseUpload'])}`,
    [g.param('InputStream', input)],
    draw(g, vulnerable, fixed),
    {
      throws: 'ParserConfigurationException, SAXException, IOException',
      doc: 'Parses an uploaded XML document.',
    },
  );
  return { cwe: 'CWE-611', ...m };
}

function deserialization(g: Gen): Pair {
  const input = g.pick(['in', 'input', 'body', 'payload']);
  const t = cap(g.pick(ENTITIES));
  const ois = (filter: string[]) => [
    `try (ObjectInputStream ois = new ObjectInputStream(${input})) {`,
    ...filter.map((l) => '    ' + l),
    `    Object obj = ois.readObject();`,
    `    if (!(obj instanceof ${t}Dto)) {`,
    `        throw new InvalidObjectException("unexpected type");`,
    `    }`,
    `    return (${t}Dto) obj;`,
    `}`,
  ];
  const vulnerable: Idiom[] = [
    () => ois([]),
    () =>
      ois([`ois.setObjectInputFilter(ObjectInputFilter.Config.createFilter("*;maxdepth=${g.int(5, 20)}"));`]),
    () => [
      `try (XMLDecoder decoder = new XMLDecoder(${input})) {`,
      `    return (${t}Dto) decoder.readObject();`,
      `}`,
    ],
    () => [
      `objectMapper.enableDefaultTyping();`,
      `return (${t}Dto) objectMapper.readValue(${input}, Object.class);`,
    ],
  ];
  const fixed: Idiom[] = [
    () =>
      ois([
        `ois.setObjectInputFilter(ObjectInputFilter.Config.createFilter("com.example.dto.${t}Dto;java.lang.*;!*"));`,
      ]),
    () => [`return objectMapper.readValue(${input}, ${t}Dto.class);`],
    () =>
      ois([
        `ois.setObjectInputFilter(info -> info.serialClass() == null || info.serialClass() == ${t}Dto.class`,
        `        ? ObjectInputFilter.Status.ALLOWED`,
        `        : ObjectInputFilter.Status.REJECTED);`,
      ]),
  ];
  const m = method(
    g,
    `public ${t}Dto ${g.pick(['read', 'decode', 'restore'])}${t}`,
    [g.param('InputStream', input)],
    draw(g, vulnerable, fixed),
    { throws: 'IOException, ClassNotFoundException', doc: 'Reads a transferred object.' },
  );
  return { cwe: 'CWE-502', ...m };
}

function hardcodedCredentials(g: Gen): Pair {
  const user = g.pick(['admin', 'svc_app', 'reporting', 'root']);
  const pw = g.pick(['Summer2019!', 'p@ssw0rd', 'changeme123', 'Tr0ub4dor&3', 'letmein!42']);
  const url = g.pick(['"jdbc:postgresql://db.internal:5432/app"', 'jdbcUrl', 'settings.getUrl()']);
  const open = (args: string) => [
    `Connection conn = DriverManager.getConnection(${url}, ${args});`,
    `conn.setAutoCommit(false);`,
    `return conn;`,
  ];
  const props = (password: string) => [
    `Properties props = new Properties();`,
    `props.setProperty("user", "${user}");`,
    `props.setProperty("password", ${password});`,
    ...open('props'),
  ];
  const vulnerable: Idiom[] = [
    () => open(`"${user}", "${pw}"`),
    () => props(`"${pw}"`),
    () => [
      `String password = System.getenv().getOrDefault("DB_PASSWORD", "${pw}");`,
      ...open(`"${user}", password`),
    ],
    () => [
      `String password = config.getString("db.password");`,
      `if (password == null) {`,
      `    password = "${pw}";`,
      `}`,
      ...open(`"${user}", password`),
    ],
  ];
  const fixed: Idiom[] = [
    () => [
      `String password = System.getenv("DB_PASSWORD");`,
      `if (password == null) {`,
      `    throw new IllegalStateException("DB_PASSWORD is not set");`,
      `}`,
      ...open(`"${user}", password`),
    ],
    () => props(`secrets.get("db/${user}/password")`),
    () => [
      `String password = config.getString("db.password");`,
      `if (password == null) {`,
      `    throw new IllegalStateException("db.password is not configured");`,
      `}`,
      ...open(`"${user}", password`),
    ],
    () => open(`"${user}", secrets.get("db/${user}/password")`),
  ];
  const m = method(
    g,
    `${g.pick(['public', 'private', 'protected'])} Connection ${g.pick(['openConnection', 'connect', 'newConnection'])}`,
    [],
    draw(g, vulnerable, fixed),
    { throws: 'SQLException', doc: 'Opens a database connection.' },
  );
  return { cwe: 'CWE-798', ...m };
}

function missingAuthorization(g: Gen): Pair {
  const e = g.pick(ENTITIES);
  const id = g.pick(['id', `${e}Id`, 'targetId']);
  const repo = `${e}Repository`;
  const verb = g.pick(['delete', 'update', 'export', 'close']);
  const load = [
    `${cap(e)} entity = ${repo}.findById(${id}).orElseThrow(() -> new NotFoundException("${e} " + ${id}));`,
  ];
  const act =
    verb === 'delete'
      ? [`${repo}.delete(entity);`, `${g.log}.info("${e} {} deleted", ${id});`]
      : verb === 'update'
        ? [
            `entity.setStatus(request.getStatus());`,
            `entity.setUpdatedAt(Instant.now());`,
            `${repo}.save(entity);`,
          ]
        : verb === 'export'
          ? [`exporter.write(entity, response.getOutputStream());`]
          : [`entity.close(Instant.now());`, `${repo}.save(entity);`];
  const deny = [`    throw new AccessDeniedException("not allowed to ${verb} ${e} " + ${id});`, `}`];
  const owner = `!entity.getOwnerId().equals(principal.getId())`;
  const vulnerable: Idiom[] = [
    () => [...load, ...act],
    () => [`if (!principal.isAuthenticated()) {`, ...deny, ...load, ...act],
    () => [
      ...load,
      `if (!principal.hasRole("ADMIN") && ${owner}) {`,
      `    ${g.log}.warn("{} changes ${e} {}", principal.getName(), ${id});`,
      `}`,
      ...act,
    ],
  ];
  const fixed: Idiom[] = [
    () => [...load, `if (!principal.hasRole("ADMIN") && ${owner}) {`, ...deny, ...act],
    () => [...load, `accessPolicy.check(principal, "${verb}", entity);`, ...act],
    () => [...load, `if (${owner}) {`, ...deny, ...act],
    () => [`if (!principal.hasRole("ADMIN")) {`, ...deny, ...load, ...act],
  ];
  const m = method(
    g,
    `public void ${verb}${cap(e)}`,
    [
      g.param('long', id),
      g.param('Principal', 'principal'),
      ...(verb === 'update'
        ? [g.param(`${cap(e)}Request`, 'request')]
        : verb === 'export'
          ? [g.param('HttpServletResponse', 'response')]
          : []),
    ],
    draw(g, vulnerable, fixed),
    { doc: `${cap(verb)}s a ${e}.`, throws: verb === 'export' ? 'IOException' : undefined },
  );
  return { cwe: 'CWE-862', ...m };
}

const FAMILIES = [
  sqlInjection,
  commandInjection,
  ldapInjection,
  xpathInjection,
  pathTraversal,
  xss,
  weakHash,
  weakCipher,
  weakRandom,
  xxe,
  deserialization,
  hardcodedCredentials,
  missingAuthorization,
];

// ---------------------------------------------------------------- projects, style, output

const PROJECTS = [
  'acme-billing',
  'orbit-crm',
  'harbor-logistics',
  'medilink-portal',
  'pixel-cms',
  'quartz-hr',
  'nimbus-storage',
  'ledger-core',
  'atlas-gateway',
  'beacon-iot',
  'cobalt-shop',
  'delta-reports',
  'ember-forum',
  'fjord-auth',
  'granite-erp',
  'helix-lab',
  'ion-payments',
  'jade-tickets',
  'kestrel-fleet',
  'lumen-docs',
  'maple-school',
  'nova-insure',
  'onyx-backup',
  'prism-analytics',
];

function renderStyle(lines: string[], style: Style): string {
  const out: string[] = [];
  for (const line of lines) {
    const m = /^( *)(.*)$/.exec(line)!;
    const depth = Math.floor(m[1].length / 4);
    const extra = ' '.repeat(m[1].length % 4);
    const indent = style.indent.repeat(depth) + extra;
    let body = m[2];
    if (
      style.allman &&
      body.endsWith(' {') &&
      !body.endsWith('-> {') &&
      !body.includes('= {') &&
      !body.startsWith('{')
    ) {
      if (body.startsWith('} ')) {
        out.push(indent + '}');
        body = body.slice(2);
      }
      out.push(indent + body.slice(0, -2));
      out.push(indent + '{');
      continue;
    }
    out.push(indent + body);
  }
  return out.join('\n');
}

export function makeDemoDataset(options: DemoOptions): DataRecord[] {
  const rng = new Rng(options.seed);
  const styles = new Map<string, Style>();
  for (const p of PROJECTS)
    styles.set(p, {
      indent: [' '.repeat(4), ' '.repeat(2), '\t'][rng.int(3)],
      allman: rng.next() < 0.2,
      logger: ['log', 'LOG', 'logger'][rng.int(3)],
      finalParams: rng.next() < 0.25,
    });
  // projects in a seeded order, dealt round-robin: 13 families and 24 projects are coprime, so every
  // family spreads over (nearly) every project and every split gets some of each family
  const order = PROJECTS.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const k = rng.int(i + 1);
    [order[i], order[k]] = [order[k], order[i]];
  }
  const records: DataRecord[] = [];
  for (let i = 0; i < options.pairs; i++) {
    const project = PROJECTS[order[i % order.length]];
    const style = styles.get(project)!;
    const g = new Gen(rng, style);
    const pair = FAMILIES[i % FAMILIES.length](g);
    const versions: [0 | 1, string[]][] = [
      [1, pair.vulnerable],
      [0, pair.fixed],
    ];
    for (const [target, lines] of versions)
      records.push({ code: renderStyle(lines, style), label: target, cwe: pair.cwe, project });
  }
  const { assignment } = assignSplits(records, {
    strategy: 'grouped',
    groupBy: 'project',
    fractions: { train: 0.7, validation: 0.15, test: 0.15 },
    seed: options.seed,
  });
  return records.map((r, i) => ({ ...r, split: assignment[i] }));
}

export function toJsonl(records: DataRecord[]): string {
  return records
    .map((r) =>
      JSON.stringify({ code: r.code, target: r.label, cwe: r.cwe, project: r.project, split: r.split }),
    )
    .join('\n')
    .concat('\n');
}

if (process.argv[1] && /make-demo-dataset\.ts$/.test(process.argv[1])) {
  const seed = Number(arg('seed', String(DEMO_DATASET.seed)));
  const pairs = Number(arg('pairs', String(DEMO_DATASET.pairs)));
  const out = arg('out', 'public/demo/java-vulns.jsonl');
  const records = makeDemoDataset({ seed, pairs });
  mkdirSync(dirname(out), { recursive: true });
  const text = toJsonl(records);
  writeFileSync(out, text);
  const bySplit = new Map<string, number[]>();
  for (const r of records) {
    const c = bySplit.get(r.split!) ?? [0, 0];
    c[r.label]++;
    bySplit.set(r.split!, c);
  }
  console.log(`${out}: ${records.length} methods, ${(text.length / 1024).toFixed(0)} KiB`);
  for (const [s, [neg, pos]] of bySplit) console.log(`  ${s}: ${pos} vulnerable / ${neg} not`);
  if (!process.argv.includes('--no-check')) {
    // every method must compile (javac over a stub compilation unit); see scripts/check-demo-compiles.ts
    // (not awaited at top level: the check script imports this module)
    const methods = records.map((r) => r.code);
    void import('./check-demo-compiles.ts').then(({ checkCompiles, reportFailures }) => {
      const failures = checkCompiles(methods);
      if (failures.length > 0) {
        reportFailures(failures, methods);
        process.exit(1);
      }
      console.log(`  javac: all ${methods.length} methods compile`);
    });
  }
}
