/**
 * Generates the embedded demo dataset: public/demo/java-vulns.jsonl.
 *
 *   npx tsx scripts/make-demo-dataset.ts [--seed 2401] [--pairs 260] [--out public/demo/java-vulns.jsonl]
 *
 * Each line is one Java method: {"code", "target" (1 vulnerable / 0 not), "cwe", "project", "split"}.
 * Methods come in pairs: a vulnerable version and a fixed version of the same method, as in the
 * paper's balanced dataset (vulnerable vs fixed functions of real commits). The two versions share
 * everything except the security-relevant code, and that differs the way real fixes do (a prepared
 * statement with bound parameters instead of concatenation, an argument vector instead of a shell,
 * a normalized path checked against its base, a parser with DOCTYPEs disallowed …), never by one
 * giveaway token. Vulnerable versions sometimes carry insufficient checks (a `startsWith` on a
 * non-normalized path, a prepared statement that still concatenates) and fixed versions are
 * sometimes shorter, so that length or the presence of "some validation" does not give the label.
 *
 * Families (CWE): SQL injection (89), OS command injection (78), LDAP injection (90), XPath injection
 * (643), path traversal (22), XSS (79), weak hash (328), weak cipher (327), weak random (330),
 * XXE (611), insecure deserialization (502), hard-coded credentials (798), missing authorization (862).
 *
 * Variety: identifiers drawn from pools (entities, columns, variable names), per-project style
 * (indent unit, brace placement, logger name), optional Javadoc and comments without label words,
 * and shared business logic of heavy-tailed size (null checks, logging, mapping loops, reports,
 * retries), so methods range from tens to many hundreds of tokens.
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
  /** Heavy-tailed count: mostly small, sometimes large. */
  heavy(max: number): number {
    const x = Math.floor(Math.exp(this.rng.normal() * 0.9 + 0.3));
    return Math.min(max, Math.max(0, x));
  }
  get log(): string {
    return this.style.logger;
  }
  param(type: string, name: string): string {
    return `${this.style.finalParams ? 'final ' : ''}${type} ${name}`;
  }
}

const ENTITIES = [
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
  'document',
  'payment',
  'tenant',
  'member',
];
const COLUMNS = ['name', 'email', 'status', 'code', 'region', 'owner', 'title', 'category', 'reference'];
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
  if (g.chance(0.2))
    out.push(
      `long started = System.nanoTime();`,
      `metrics.counter("${g.pick(ENTITIES)}.calls").increment();`,
    );
  return out;
}

const FILLERS: ((g: Gen) => string[])[] = [
  (g) => {
    const e = g.pick(ENTITIES);
    return [
      `List<${cap(e)}Summary> summaries = new ArrayList<>();`,
      `for (${cap(e)} item : ${e}Repository.findRecent(${g.int(5, 200)})) {`,
      `    if (item.isArchived()) {`,
      `        continue;`,
      `    }`,
      `    summaries.add(new ${cap(e)}Summary(item.getId(), item.get${cap(g.pick(COLUMNS))}(), item.getUpdatedAt()));`,
      `}`,
      `${g.log}.trace("collected {} summaries", summaries.size());`,
    ];
  },
  (g) => [
    `StringBuilder report = new StringBuilder();`,
    `report.append("${g.pick(['Daily', 'Weekly', 'Monthly'])} ${g.pick(ENTITIES)} report\\n");`,
    `for (Map.Entry<String, Integer> entry : counts.entrySet()) {`,
    `    report.append(entry.getKey()).append(": ").append(entry.getValue()).append('\\n');`,
    `}`,
    `int total = counts.values().stream().mapToInt(Integer::intValue).sum();`,
    `report.append("total: ").append(total);`,
  ],
  (g) => {
    const n = g.pick(['attempts', 'tries', 'retry']);
    return [
      `int ${n} = 0;`,
      `while (${n} < ${g.int(2, 5)} && !connectionPool.isHealthy()) {`,
      `    ${n}++;`,
      `    try {`,
      `        Thread.sleep(${g.pick([50, 100, 250, 500])}L * ${n});`,
      `    } catch (InterruptedException ie) {`,
      `        Thread.currentThread().interrupt();`,
      `        break;`,
      `    }`,
      `}`,
    ];
  },
  (g) => {
    const e = g.pick(ENTITIES);
    return [
      `Map<String, Object> audit = new HashMap<>();`,
      `audit.put("actor", currentUser().getName());`,
      `audit.put("action", "${g.pick(['read', 'update', 'export', 'lookup'])}-${e}");`,
      `audit.put("at", Instant.now().toString());`,
      `auditLog.record(audit);`,
    ];
  },
  (g) => [
    `Optional<CacheEntry> cached = cache.getIfPresent(cacheKey);`,
    `if (cached.isPresent() && !cached.get().isExpired(Duration.ofMinutes(${g.int(1, 30)}))) {`,
    `    ${g.log}.debug("cache hit for {}", cacheKey);`,
    `    hits.incrementAndGet();`,
    `}`,
  ],
  (g) => {
    const v = g.pick(['limit', 'pageSize', 'max']);
    return [
      `int ${v} = config.getInt("${g.pick(ENTITIES)}.${v}", ${g.pick([20, 50, 100])});`,
      `if (${v} <= 0 || ${v} > ${g.pick([500, 1000, 5000])}) {`,
      `    ${v} = ${g.pick([20, 50, 100])};`,
      `}`,
    ];
  },
  (g) => [
    `double[] window = new double[${g.pick([8, 16, 32])}];`,
    `double mean = 0;`,
    `for (int i = 0; i < window.length; i++) {`,
    `    window[i] = samples.isEmpty() ? 0 : samples.get(i % samples.size());`,
    `    mean += window[i] / window.length;`,
    `}`,
    `double variance = 0;`,
    `for (double x : window) {`,
    `    variance += (x - mean) * (x - mean) / window.length;`,
    `}`,
    `${g.log}.debug("mean={} variance={}", mean, variance);`,
  ],
];

function filler(g: Gen): string[] {
  const out: string[] = [];
  const n = g.heavy(9);
  for (let i = 0; i < n; i++) out.push(...g.pick(FILLERS)(g));
  return out;
}

interface Pair {
  cwe: string;
  vulnerable: string[];
  fixed: string[];
}

/** Wrap core lines in a method with shared preamble/filler; the two versions differ only in `core`. */
function method(
  g: Gen,
  header: string,
  params: string[],
  cores: { vulnerable: string[]; fixed: string[] },
  opts: { throws?: string; tail?: string[]; doc?: string } = {},
): { vulnerable: string[]; fixed: string[] } {
  const pre = preamble(
    g,
    params.filter((p) => /^(final )?String /.test(p)).map((p) => p.split(' ').pop()!),
  );
  const before = g.chance(0.5) ? filler(g) : [];
  const after = g.chance(0.4) ? filler(g) : [];
  const docLines: string[] = [];
  if (opts.doc && g.chance(0.45)) {
    docLines.push('/**', ` * ${opts.doc}`);
    for (const p of params)
      if (g.chance(0.5)) docLines.push(` * @param ${p.split(' ').pop()} the ${p.split(' ').pop()}`);
    docLines.push(' */');
  }
  const annotations = g.chance(0.15)
    ? [g.pick(['@Transactional', '@Override', '@Timed', '@Transactional(readOnly = true)'])]
    : [];
  const sig = `${header}(${params.join(', ')})${opts.throws ? ` throws ${opts.throws}` : ''} {`;
  const build = (core: string[]) => [
    ...docLines,
    ...annotations,
    sig,
    ...[...pre, ...before, ...core, ...after, ...(opts.tail ?? [])].map((l) => '    ' + l),
    '}',
  ];
  return { vulnerable: build(cores.vulnerable), fixed: build(cores.fixed) };
}

// ---------------------------------------------------------------- families

function sqlInjection(g: Gen): Pair {
  const e = g.pick(ENTITIES);
  const col = g.pick(COLUMNS);
  const table = g.pick([`${e}s`, `${e}_table`, `t_${e}`, `app_${e}s`]);
  const p = g.pick([col, `${col}Filter`, 'value', 'term', `${e}${cap(col)}`]);
  const conn = g.pick(['conn', 'connection', 'dbConnection', 'c']);
  const rs = g.pick(['rs', 'results', 'resultSet']);
  const list = g.pick(['found', 'items', 'out', `${e}s`]);
  const mapLoop = [
    `List<${cap(e)}> ${list} = new ArrayList<>();`,
    `while (${rs}.next()) {`,
    `    ${list}.add(new ${cap(e)}(${rs}.getLong("id"), ${rs}.getString("${col}")));`,
    `}`,
    `return ${list};`,
  ];
  const variant = g.int(0, 3);
  const header = `public List<${cap(e)}> ${g.pick(['find', 'search', 'load', 'lookup', 'fetch'])}${cap(e)}sBy${cap(col)}`;
  let vulnerable: string[];
  let fixed: string[];
  let params = [g.param('String', p)];
  if (variant === 0) {
    vulnerable = [
      `Statement stmt = ${conn}.createStatement();`,
      `String sql = "SELECT id, ${col} FROM ${table} WHERE ${col} = '" + ${p} + "'";`,
      `ResultSet ${rs} = stmt.executeQuery(sql);`,
      ...mapLoop,
    ];
    fixed = [
      `String sql = "SELECT id, ${col} FROM ${table} WHERE ${col} = ?";`,
      `PreparedStatement stmt = ${conn}.prepareStatement(sql);`,
      `stmt.setString(1, ${p});`,
      `ResultSet ${rs} = stmt.executeQuery();`,
      ...mapLoop,
    ];
  } else if (variant === 1) {
    // a prepared statement that still concatenates user input
    vulnerable = [
      `PreparedStatement ps = ${conn}.prepareStatement(`,
      `        "SELECT id, ${col} FROM ${table} WHERE ${col} LIKE '%" + ${p}.trim() + "%' AND deleted = ?");`,
      `ps.setBoolean(1, false);`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ];
    fixed = [
      `PreparedStatement ps = ${conn}.prepareStatement(`,
      `        "SELECT id, ${col} FROM ${table} WHERE ${col} LIKE ? AND deleted = ?");`,
      `ps.setString(1, "%" + ${p}.trim() + "%");`,
      `ps.setBoolean(2, false);`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ];
  } else if (variant === 2) {
    const sort = g.pick(['sortBy', 'orderColumn', 'sortField']);
    params = [g.param('String', p), g.param('String', sort)];
    vulnerable = [
      `String sql = String.format("SELECT id, ${col} FROM ${table} WHERE ${col} = ? ORDER BY %s", ${sort});`,
      `PreparedStatement ps = ${conn}.prepareStatement(sql);`,
      `ps.setString(1, ${p});`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ];
    fixed = [
      `String column = Set.of("id", "${col}", "created_at").contains(${sort}) ? ${sort} : "id";`,
      `String sql = String.format("SELECT id, ${col} FROM ${table} WHERE ${col} = ? ORDER BY %s", column);`,
      `PreparedStatement ps = ${conn}.prepareStatement(sql);`,
      `ps.setString(1, ${p});`,
      `ResultSet ${rs} = ps.executeQuery();`,
      ...mapLoop,
    ];
  } else {
    const tpl = g.pick(['jdbcTemplate', 'jdbc', 'template']);
    vulnerable = [
      `return ${tpl}.query("SELECT id, ${col} FROM ${table} WHERE ${col} = '" + ${p} + "' AND tenant_id = " + tenantId,`,
      `        (row, i) -> new ${cap(e)}(row.getLong("id"), row.getString("${col}")));`,
    ];
    fixed = [
      `return ${tpl}.query("SELECT id, ${col} FROM ${table} WHERE ${col} = ? AND tenant_id = ?",`,
      `        (row, i) -> new ${cap(e)}(row.getLong("id"), row.getString("${col}")), ${p}, tenantId);`,
    ];
  }
  const m = method(
    g,
    header,
    params,
    { vulnerable, fixed },
    { throws: 'SQLException', doc: `Finds ${e}s by ${col}.` },
  );
  return { cwe: 'CWE-89', ...m };
}

function commandInjection(g: Gen): Pair {
  const what = g.pick(['host', 'target', 'address', 'server']);
  const file = g.pick(['fileName', 'inputFile', 'upload', 'imageName']);
  const variant = g.int(0, 2);
  const proc = g.pick(['process', 'proc', 'p']);
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
  let vulnerable: string[];
  let fixed: string[];
  let header: string;
  let params: string[];
  if (variant === 0) {
    header = `public String ${g.pick(['ping', 'checkReachable', 'probe'])}${cap(what)}`;
    params = [g.param('String', what)];
    vulnerable = [
      `Process ${proc} = Runtime.getRuntime().exec("ping -c ${g.int(1, 4)} " + ${what});`,
      ...read,
    ];
    fixed = [
      `if (!${what}.matches("[A-Za-z0-9.-]{1,253}")) {`,
      `    throw new IllegalArgumentException("invalid ${what}");`,
      `}`,
      `Process ${proc} = new ProcessBuilder("ping", "-c", "${g.int(1, 4)}", ${what}).redirectErrorStream(true).start();`,
      ...read,
    ];
  } else if (variant === 1) {
    header = `public String ${g.pick(['convert', 'makeThumbnail', 'resize'])}${cap(g.pick(['image', 'picture', 'scan']))}`;
    params = [g.param('String', file)];
    vulnerable = [
      `String cmd = "convert " + ${file} + " -resize ${g.pick([64, 128, 256])}x${g.pick([64, 128, 256])} /tmp/thumb.png";`,
      `Process ${proc} = new ProcessBuilder("sh", "-c", cmd).start();`,
      ...read,
    ];
    fixed = [
      `Path input = uploads.resolve(${file}).normalize();`,
      `if (!input.startsWith(uploads)) {`,
      `    throw new IllegalArgumentException("file outside uploads: " + ${file});`,
      `}`,
      `Process ${proc} = new ProcessBuilder("convert", input.toString(), "-resize", "${g.pick([64, 128, 256])}x${g.pick([64, 128, 256])}", "/tmp/thumb.png").start();`,
      ...read,
    ];
  } else {
    const branch = g.pick(['branch', 'ref', 'tag']);
    header = `public String ${g.pick(['checkout', 'showLog', 'describe'])}${cap(branch)}`;
    params = [g.param('String', branch)];
    vulnerable = [
      `String[] cmd = {"/bin/bash", "-c", "git -C " + repoDir + " log --oneline -n 20 " + ${branch}};`,
      `Process ${proc} = Runtime.getRuntime().exec(cmd);`,
      ...read,
    ];
    fixed = [
      `if (${branch}.startsWith("-") || !${branch}.matches("[\\\\w./-]+")) {`,
      `    throw new IllegalArgumentException("unsupported ${branch}: " + ${branch});`,
      `}`,
      `String[] cmd = {"git", "-C", repoDir.toString(), "log", "--oneline", "-n", "20", "--end-of-options", ${branch}};`,
      `Process ${proc} = Runtime.getRuntime().exec(cmd);`,
      ...read,
    ];
  }
  const m = method(
    g,
    header,
    params,
    { vulnerable, fixed },
    { throws: 'IOException, InterruptedException', doc: 'Runs a helper tool.' },
  );
  return { cwe: 'CWE-78', ...m };
}

function ldapInjection(g: Gen): Pair {
  const u = g.pick(['username', 'uid', 'login', 'account']);
  const ctx = g.pick(['ctx', 'dirContext', 'ldap']);
  const base = g.pick(['"ou=people,dc=example,dc=com"', 'baseDn', 'config.getUserBase()']);
  const res = g.pick(['results', 'answer', 'found']);
  const tail = [
    `SearchControls controls = new SearchControls();`,
    `controls.setSearchScope(SearchControls.SUBTREE_SCOPE);`,
  ];
  const after = [`return ${res}.hasMore() ? ${res}.next().getAttributes() : null;`];
  const variant = g.int(0, 1);
  const vulnerable =
    variant === 0
      ? [
          ...tail,
          `String filter = "(&(objectClass=person)(uid=" + ${u} + "))";`,
          `NamingEnumeration<SearchResult> ${res} = ${ctx}.search(${base}, filter, controls);`,
          ...after,
        ]
      : [
          ...tail,
          `NamingEnumeration<SearchResult> ${res} = ${ctx}.search(${base}, "(|(uid=" + ${u} + ")(mail=" + ${u} + "))", controls);`,
          ...after,
        ];
  const fixed =
    variant === 0
      ? [
          ...tail,
          `String filter = "(&(objectClass=person)(uid={0}))";`,
          `NamingEnumeration<SearchResult> ${res} = ${ctx}.search(${base}, filter, new Object[] {${u}}, controls);`,
          ...after,
        ]
      : [
          ...tail,
          `StringBuilder escaped = new StringBuilder();`,
          `for (char ch : ${u}.toCharArray()) {`,
          `    if ("\\\\*()\\0".indexOf(ch) >= 0) {`,
          `        escaped.append('\\\\').append(String.format("%02x", (int) ch));`,
          `    } else {`,
          `        escaped.append(ch);`,
          `    }`,
          `}`,
          `NamingEnumeration<SearchResult> ${res} = ${ctx}.search(${base}, "(|(uid=" + escaped + ")(mail=" + escaped + "))", controls);`,
          ...after,
        ];
  const m = method(
    g,
    `public Attributes ${g.pick(['findUser', 'lookupAccount', 'resolvePerson'])}`,
    [g.param('String', u)],
    { vulnerable, fixed },
    { throws: 'NamingException', doc: 'Looks a directory entry up.' },
  );
  return { cwe: 'CWE-90', ...m };
}

function xpathInjection(g: Gen): Pair {
  const name = g.pick(['user', 'login', 'name']);
  const pass = g.pick(['password', 'pass', 'secret']);
  const xp = g.pick(['xpath', 'xPath', 'xp']);
  const doc = g.pick(['usersDoc', 'document', 'doc']);
  const vulnerable = [
    `XPath ${xp} = XPathFactory.newInstance().newXPath();`,
    `String expr = "/users/user[name='" + ${name} + "' and password='" + hash(${pass}) + "']";`,
    `Node node = (Node) ${xp}.evaluate(expr, ${doc}, XPathConstants.NODE);`,
    `return node != null;`,
  ];
  const fixed = [
    `XPath ${xp} = XPathFactory.newInstance().newXPath();`,
    `${xp}.setXPathVariableResolver(v -> "name".equals(v.getLocalPart()) ? ${name} : hash(${pass}));`,
    `String expr = "/users/user[name=$name and password=$pw]";`,
    `Node node = (Node) ${xp}.evaluate(expr, ${doc}, XPathConstants.NODE);`,
    `return node != null;`,
  ];
  const m = method(
    g,
    `public boolean ${g.pick(['authenticate', 'checkCredentials', 'verifyLogin'])}`,
    [g.param('String', name), g.param('String', pass)],
    { vulnerable, fixed },
    { throws: 'XPathExpressionException', doc: 'Checks credentials against the XML store.' },
  );
  return { cwe: 'CWE-643', ...m };
}

function pathTraversal(g: Gen): Pair {
  const f = g.pick(['fileName', 'name', 'path', 'relativePath', 'attachment']);
  const base = g.pick(['baseDir', 'storageRoot', 'uploadDir', 'ROOT']);
  const variant = g.int(0, 2);
  const ret = g.pick([
    [`return Files.readAllBytes(target);`],
    [`try (InputStream in = Files.newInputStream(target)) {`, `    return in.readAllBytes();`, `}`],
  ]);
  let vulnerable: string[];
  let fixed: string[];
  if (variant === 0) {
    vulnerable = [`Path target = Paths.get(${base}.toString(), ${f});`, ...ret];
    fixed = [
      `Path root = ${base}.toRealPath();`,
      `Path target = root.resolve(${f}).normalize();`,
      `if (!target.startsWith(root)) {`,
      `    throw new SecurityException("access outside " + root);`,
      `}`,
      ...ret,
    ];
  } else if (variant === 1) {
    // a check that does not normalize first
    vulnerable = [
      `Path target = ${base}.resolve(${f});`,
      `if (!target.startsWith(${base})) {`,
      `    throw new SecurityException("access outside " + ${base});`,
      `}`,
      ...ret,
    ];
    fixed = [
      `Path target = ${base}.resolve(${f}).normalize().toAbsolutePath();`,
      `if (!target.startsWith(${base}.toAbsolutePath().normalize())) {`,
      `    throw new SecurityException("access outside " + ${base});`,
      `}`,
      ...ret,
    ];
  } else {
    vulnerable = [
      `String cleaned = ${f}.replace("../", "");`,
      `Path target = new File(${base}.toFile(), cleaned).toPath();`,
      ...ret,
    ];
    fixed = [
      `String cleaned = Paths.get(${f}).getFileName().toString();`,
      `Path target = new File(${base}.toFile(), cleaned).toPath();`,
      ...ret,
    ];
  }
  const m = method(
    g,
    `public byte[] ${g.pick(['download', 'readAttachment', 'loadFile', 'serve'])}`,
    [g.param('String', f)],
    { vulnerable, fixed },
    { throws: 'IOException', doc: 'Returns the stored file.' },
  );
  return { cwe: 'CWE-22', ...m };
}

function xss(g: Gen): Pair {
  const v = g.pick(['name', 'query', 'comment', 'title', 'message']);
  const out = g.pick(['out', 'writer', 'w']);
  const variant = g.int(0, 1);
  const head = [
    `String ${v} = request.getParameter("${v === 'query' ? 'q' : v}");`,
    `response.setContentType("text/html;charset=UTF-8");`,
    `PrintWriter ${out} = response.getWriter();`,
  ];
  let vulnerable: string[];
  let fixed: string[];
  if (variant === 0) {
    vulnerable = [
      ...head,
      `${out}.println("<h2>${g.pick(['Results for', 'Hello', 'You searched'])} " + ${v} + "</h2>");`,
    ];
    fixed = [
      ...head,
      `${out}.println("<h2>${g.pick(['Results for', 'Hello', 'You searched'])} " + HtmlUtils.htmlEscape(${v}) + "</h2>");`,
    ];
  } else {
    const items = g.pick(['comments', 'entries', 'posts']);
    vulnerable = [
      ...head,
      `${out}.write("<ul>");`,
      `for (Comment c : ${items}Service.latest(${v})) {`,
      `    ${out}.write("<li>" + c.getAuthor() + ": " + c.getText() + "</li>");`,
      `}`,
      `${out}.write("</ul>");`,
    ];
    fixed = [
      ...head,
      `${out}.write("<ul>");`,
      `for (Comment c : ${items}Service.latest(${v})) {`,
      `    ${out}.write("<li>" + Encode.forHtml(c.getAuthor()) + ": " + Encode.forHtml(c.getText()) + "</li>");`,
      `}`,
      `${out}.write("</ul>");`,
    ];
  }
  const m = method(
    g,
    `protected void ${g.pick(['doGet', 'doPost', 'render'])}`,
    [g.param('HttpServletRequest', 'request'), g.param('HttpServletResponse', 'response')],
    { vulnerable, fixed },
    { throws: 'IOException', doc: 'Renders the page.' },
  );
  return { cwe: 'CWE-79', ...m };
}

function weakHash(g: Gen): Pair {
  const pw = g.pick(['password', 'rawPassword', 'secret', 'pin']);
  const variant = g.int(0, 1);
  const vulnerable =
    variant === 0
      ? [
          `MessageDigest md = MessageDigest.getInstance("${g.pick(['MD5', 'SHA-1'])}");`,
          `byte[] digest = md.digest(${pw}.getBytes(StandardCharsets.UTF_8));`,
          `return Base64.getEncoder().encodeToString(digest);`,
        ]
      : [
          `MessageDigest md = MessageDigest.getInstance("${g.pick(['MD5', 'SHA-1'])}");`,
          `md.update(salt);`,
          `byte[] digest = md.digest(${pw}.getBytes(StandardCharsets.UTF_8));`,
          `return Base64.getEncoder().encodeToString(salt) + ":" + Base64.getEncoder().encodeToString(digest);`,
        ];
  const fixed = [
    `PBEKeySpec spec = new PBEKeySpec(${pw}.toCharArray(), salt, ${g.pick([210000, 310000, 600000])}, 256);`,
    `SecretKeyFactory factory = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256");`,
    `byte[] digest = factory.generateSecret(spec).getEncoded();`,
    `spec.clearPassword();`,
    `return Base64.getEncoder().encodeToString(salt) + ":" + Base64.getEncoder().encodeToString(digest);`,
  ];
  const m = method(
    g,
    `public String ${g.pick(['hashPassword', 'encode', 'digestCredential'])}`,
    [g.param('String', pw), g.param('byte[]', 'salt')],
    { vulnerable, fixed },
    { throws: 'GeneralSecurityException', doc: 'Hashes a credential for storage.' },
  );
  return { cwe: 'CWE-328', ...m };
}

function weakCipher(g: Gen): Pair {
  const data = g.pick(['plaintext', 'payload', 'data', 'record']);
  const key = g.pick(['key', 'secretKey', 'dataKey']);
  const vulnerable = [
    `Cipher cipher = Cipher.getInstance("${g.pick(['DES/ECB/PKCS5Padding', 'AES/ECB/PKCS5Padding', 'DESede/ECB/PKCS5Padding', 'AES'])}");`,
    `cipher.init(Cipher.ENCRYPT_MODE, ${key});`,
    `return cipher.doFinal(${data});`,
  ];
  const fixed = [
    `byte[] iv = new byte[12];`,
    `secureRandom.nextBytes(iv);`,
    `Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");`,
    `cipher.init(Cipher.ENCRYPT_MODE, ${key}, new GCMParameterSpec(128, iv));`,
    `byte[] sealed = cipher.doFinal(${data});`,
    `return ByteBuffer.allocate(iv.length + sealed.length).put(iv).put(sealed).array();`,
  ];
  const m = method(
    g,
    `public byte[] ${g.pick(['encrypt', 'seal', 'protect'])}${cap(g.pick(ENTITIES))}`,
    [g.param('byte[]', data), g.param('SecretKey', key)],
    { vulnerable, fixed },
    { throws: 'GeneralSecurityException', doc: 'Encrypts data at rest.' },
  );
  return { cwe: 'CWE-327', ...m };
}

function weakRandom(g: Gen): Pair {
  const len = g.pick([16, 24, 32]);
  const variant = g.int(0, 1);
  const purpose = g.pick(['resetToken', 'sessionId', 'apiKey', 'inviteCode']);
  const vulnerable =
    variant === 0
      ? [
          `Random random = new Random();`,
          `byte[] bytes = new byte[${len}];`,
          `random.nextBytes(bytes);`,
          `String ${purpose} = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);`,
        ]
      : [
          `StringBuilder sb = new StringBuilder();`,
          `for (int i = 0; i < ${len}; i++) {`,
          `    sb.append(ALPHABET.charAt((int) (Math.random() * ALPHABET.length())));`,
          `}`,
          `String ${purpose} = sb.toString();`,
        ];
  const fixed =
    variant === 0
      ? [
          `SecureRandom random = new SecureRandom();`,
          `byte[] bytes = new byte[${len}];`,
          `random.nextBytes(bytes);`,
          `String ${purpose} = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);`,
        ]
      : [
          `StringBuilder sb = new StringBuilder();`,
          `for (int i = 0; i < ${len}; i++) {`,
          `    sb.append(ALPHABET.charAt(secureRandom.nextInt(ALPHABET.length())));`,
          `}`,
          `String ${purpose} = sb.toString();`,
        ];
  const owner = g.pick(['userId', 'accountId', 'ownerId']);
  const store = [
    `tokenStore.save(${owner}, ${purpose}, Instant.now().plus(Duration.ofHours(${g.int(1, 48)})));`,
    `return ${purpose};`,
  ];
  const m = method(
    g,
    `public String ${g.pick(['issue', 'create', 'generate'])}${cap(purpose)}`,
    [g.param('long', owner)],
    { vulnerable: [...vulnerable, ...store], fixed: [...fixed, ...store] },
    { doc: 'Issues a one-time token.' },
  );
  return { cwe: 'CWE-330', ...m };
}

function xxe(g: Gen): Pair {
  const input = g.pick(['input', 'xml', 'body', 'stream']);
  const dbf = g.pick(['factory', 'dbf', 'builderFactory']);
  const shared = [
    `DocumentBuilderFactory ${dbf} = DocumentBuilderFactory.newInstance();`,
    `${dbf}.setNamespaceAware(true);`,
  ];
  const decoy = g.chance(0.5) ? [`${dbf}.setValidating(false);`, `${dbf}.setIgnoringComments(true);`] : [];
  const parse = [
    `Document doc = ${dbf}.newDocumentBuilder().parse(${input});`,
    `doc.getDocumentElement().normalize();`,
    `return doc.getElementsByTagName("${g.pick(['item', 'entry', 'order', 'record'])}").getLength();`,
  ];
  const vulnerable = [...shared, ...decoy, ...parse];
  const fixed = [
    ...shared,
    `${dbf}.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);`,
    ...(g.chance(0.5)
      ? [`${dbf}.setFeature("http://xml.org/sax/features/external-general-entities", false);`]
      : []),
    `${dbf}.setXIncludeAware(false);`,
    `${dbf}.setExpandEntityReferences(false);`,
    ...decoy,
    ...parse,
  ];
  const m = method(
    g,
    `public int ${g.pick(['countItems', 'importFeed', 'parseUpload'])}`,
    [g.param('InputStream', input)],
    { vulnerable, fixed },
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
  const variant = g.int(0, 1);
  const vulnerable = [
    `try (ObjectInputStream ois = new ObjectInputStream(${input})) {`,
    `    Object obj = ois.readObject();`,
    `    if (!(obj instanceof ${t}Dto)) {`,
    `        throw new InvalidObjectException("unexpected type");`,
    `    }`,
    `    return (${t}Dto) obj;`,
    `}`,
  ];
  const fixed =
    variant === 0
      ? [
          `try (ObjectInputStream ois = new ObjectInputStream(${input})) {`,
          `    ois.setObjectInputFilter(ObjectInputFilter.Config.createFilter("com.example.dto.${t}Dto;java.lang.*;!*"));`,
          `    Object obj = ois.readObject();`,
          `    if (!(obj instanceof ${t}Dto)) {`,
          `        throw new InvalidObjectException("unexpected type");`,
          `    }`,
          `    return (${t}Dto) obj;`,
          `}`,
        ]
      : [`return objectMapper.readValue(${input}, ${t}Dto.class);`];
  const m = method(
    g,
    `public ${t}Dto ${g.pick(['read', 'decode', 'restore'])}${t}`,
    [g.param('InputStream', input)],
    { vulnerable, fixed },
    { throws: 'IOException, ClassNotFoundException', doc: 'Reads a transferred object.' },
  );
  return { cwe: 'CWE-502', ...m };
}

function hardcodedCredentials(g: Gen): Pair {
  const user = g.pick(['admin', 'svc_app', 'reporting', 'root']);
  const pw = g.pick(['Summer2019!', 'p@ssw0rd', 'changeme123', 'Tr0ub4dor&3', 'letmein!42']);
  const url = g.pick(['"jdbc:postgresql://db.internal:5432/app"', 'jdbcUrl', 'settings.getUrl()']);
  const variant = g.int(0, 1);
  const vulnerable =
    variant === 0
      ? [
          `Connection conn = DriverManager.getConnection(${url}, "${user}", "${pw}");`,
          `conn.setAutoCommit(false);`,
          `return conn;`,
        ]
      : [
          `Properties props = new Properties();`,
          `props.setProperty("user", "${user}");`,
          `props.setProperty("password", "${pw}");`,
          `Connection conn = DriverManager.getConnection(${url}, props);`,
          `conn.setAutoCommit(false);`,
          `return conn;`,
        ];
  const fixed =
    variant === 0
      ? [
          `String password = System.getenv("DB_PASSWORD");`,
          `if (password == null) {`,
          `    throw new IllegalStateException("DB_PASSWORD is not set");`,
          `}`,
          `Connection conn = DriverManager.getConnection(${url}, System.getenv().getOrDefault("DB_USER", "${user}"), password);`,
          `conn.setAutoCommit(false);`,
          `return conn;`,
        ]
      : [
          `Properties props = new Properties();`,
          `props.setProperty("user", "${user}");`,
          `props.setProperty("password", secrets.get("db/${user}/password"));`,
          `Connection conn = DriverManager.getConnection(${url}, props);`,
          `conn.setAutoCommit(false);`,
          `return conn;`,
        ];
  const m = method(
    g,
    `${g.pick(['public', 'private', 'protected'])} Connection ${g.pick(['openConnection', 'connect', 'newConnection'])}`,
    [],
    { vulnerable, fixed },
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
  const variant = g.int(0, 1);
  const vulnerable = [
    ...load,
    ...(variant === 1
      ? [`if (!principal.isAuthenticated()) {`, `    throw new AccessDeniedException("login required");`, `}`]
      : []),
    ...act,
  ];
  const fixed = [
    ...load,
    `if (!principal.hasRole("ADMIN") && !entity.getOwnerId().equals(principal.getId())) {`,
    `    throw new AccessDeniedException("not allowed to ${verb} ${e} " + ${id});`,
    `}`,
    ...act,
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
    { vulnerable, fixed },
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
  const records: DataRecord[] = [];
  for (let i = 0; i < options.pairs; i++) {
    const project = PROJECTS[rng.int(PROJECTS.length)];
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
  const seed = Number(arg('seed', '2401'));
  const pairs = Number(arg('pairs', '260'));
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
}
