/**
 * Checks that every method of the demo dataset compiles with javac.
 *
 *   npx tsx scripts/check-demo-compiles.ts [public/demo/java-vulns.jsonl]
 *
 * Each method becomes `class M<n> extends DemoBase { <method> }` in its own file under a temporary
 * directory; one stub compilation unit (Stubs.java) declares DemoBase with the fields and helpers the
 * methods use (`conn`, `log`, repositories, …) and the small types that are not in the JDK (entity
 * classes, servlet request/response, JdbcTemplate, encoders …). All files go to ONE javac
 * invocation; javac stops before type-checking when any file has a syntax error, so the files that
 * failed are dropped and javac runs again until the rest compiles, which lists every failing method.
 * Exits 1 and lists each method that does not compile. Needs a JDK (javac on PATH); CI does not run it,
 * scripts/make-demo-dataset.ts does whenever it writes the dataset.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_COLUMNS, DEMO_ENTITIES } from './make-demo-dataset.ts';

const cap = (s: string) => s[0].toUpperCase() + s.slice(1);

const IMPORTS = `import java.beans.XMLDecoder;
import java.io.*;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.*;
import java.sql.*;
import java.time.*;
import java.util.*;
import java.util.concurrent.ThreadLocalRandom;
import javax.crypto.*;
import javax.crypto.spec.*;
import javax.naming.*;
import javax.naming.directory.*;
import javax.xml.XMLConstants;
import javax.xml.parsers.*;
import javax.xml.xpath.*;
import org.w3c.dom.*;
import org.xml.sax.SAXException;
`;

/** The stub compilation unit: DemoBase plus the non-JDK types (same package, so they shadow on-demand imports). */
export function stubSource(): string {
  const entities = DEMO_ENTITIES.map(cap);
  const getters = DEMO_COLUMNS.map((c) => `public String get${cap(c)}() { return ""; }`).join(' ');
  const types = entities
    .map(
      (E) => `class ${E} {
  ${E}() {}
  ${E}(long id, String value) {}
  public long getId() { return 0; }
  ${getters}
  public Long getOwnerId() { return 0L; }
  public void setStatus(String s) {}
  public void setUpdatedAt(Instant t) {}
  public void close(Instant t) {}
}
class ${E}Dto implements Serializable {}
class ${E}Request { public String getStatus() { return ""; } }
`,
    )
    .join('');
  const repos = DEMO_ENTITIES.map((e) => `  protected Repo<${cap(e)}> ${e}Repository;`).join('\n');
  return `package demo;

${IMPORTS}
@interface Transactional { boolean readOnly() default false; }
@interface Timed {}
interface Logger {
  void debug(String f, Object... a);
  void info(String f, Object... a);
  void warn(String f, Object... a);
}
interface Counter { void increment(); }
interface Metrics { Counter counter(String name); }
interface Config { String getString(String k); String getUserBase(); }
interface Repo<T> { Optional<T> findById(long id); void delete(T t); void save(T t); }
interface RowMapper<T> { T mapRow(ResultSet row, int n) throws SQLException; }
interface JdbcTemplate { <T> List<T> query(String sql, RowMapper<T> m, Object... args); }
interface TokenStore { void save(long owner, String token, Instant expires); }
interface ObjectMapper {
  <T> T readValue(InputStream in, Class<T> type) throws IOException;
  void enableDefaultTyping();
}
interface Secrets { String get(String name); }
interface Settings { String getUrl(); }
interface Exporter { void write(Object o, OutputStream out) throws IOException; }
interface PasswordEncoder { String encode(CharSequence raw); }
interface Argon2 { byte[] hash(int t, int m, int p, char[] pw, byte[] salt); }
interface AccessPolicy { void check(Principal p, String action, Object target); }
interface Principal { boolean isAuthenticated(); boolean hasRole(String r); Long getId(); String getName(); }
interface HttpServletRequest { String getParameter(String n); }
interface HttpServletResponse {
  void setContentType(String t);
  PrintWriter getWriter() throws IOException;
  OutputStream getOutputStream() throws IOException;
}
interface Comment { String getAuthor(); String getText(); }
interface CommentService { List<Comment> latest(String filter); }
class NotFoundException extends RuntimeException { NotFoundException(String m) { super(m); } }
class AccessDeniedException extends RuntimeException { AccessDeniedException(String m) { super(m); } }
final class HtmlUtils { static String htmlEscape(String s) { return s; } }
final class Encode { static String forHtml(String s) { return s; } }
final class LdapEncoder { static String filterEncode(String s) { return s; } }
${types}
abstract class DemoBase {
  protected Connection conn, connection, dbConnection;
  protected Logger log, LOG, logger;
  protected Metrics metrics;
  protected Config config;
  protected JdbcTemplate jdbcTemplate, jdbc, template;
  protected DirContext ctx, dirContext, ldap;
  protected String baseDn;
  protected Document usersDoc, document, userStore;
  protected Path baseDir, storageRoot, uploadDir, ROOT;
  protected CommentService commentsService, entriesService, postsService;
  protected PasswordEncoder passwordEncoder;
  protected Argon2 argon2;
  protected SecureRandom secureRandom;
  protected static final String ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
  protected TokenStore tokenStore;
  protected ObjectMapper objectMapper;
  protected Secrets secrets;
  protected String jdbcUrl;
  protected Settings settings;
  protected Exporter exporter;
  protected AccessPolicy accessPolicy;
${repos}
  protected String hash(String s) { return s; }
}
`;
}

export interface CompileFailure {
  index: number;
  errors: string[];
}

function runJavac(dir: string, files: string[]): string {
  const r = spawnSync(
    'javac',
    [
      '-nowarn',
      '-proc:none',
      '-Xmaxerrs',
      '100000',
      '-encoding',
      'UTF-8',
      '-d',
      join(dir, 'classes'),
      ...files,
    ],
    { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
  );
  if (r.error) throw new Error(`could not run javac (is a JDK installed?): ${r.error.message}`);
  return r.status === 0 ? '' : r.stdout + r.stderr;
}

/** Indices (with javac's messages) of the methods that do not compile. */
export function checkCompiles(methods: readonly string[]): CompileFailure[] {
  const dir = mkdtempSync(join(tmpdir(), 'demo-javac-'));
  try {
    const src = join(dir, 'demo');
    mkdirSync(src);
    const stub = join(src, 'Stubs.java');
    writeFileSync(stub, stubSource());
    const fileOf = (i: number) => join(src, `M${i}.java`);
    methods.forEach((code, i) =>
      writeFileSync(fileOf(i), `package demo;\n\n${IMPORTS}\nclass M${i} extends DemoBase {\n${code}\n}\n`),
    );
    const failures = new Map<number, string[]>();
    let remaining = methods.map((_, i) => i);
    for (let round = 0; round < 20 && remaining.length > 0; round++) {
      const output = runJavac(dir, [stub, ...remaining.map(fileOf)]);
      if (!output) break;
      const failed = new Set<number>();
      for (const line of output.split('\n')) {
        const m = /M(\d+)\.java:(\d+): error: (.*)$/.exec(line);
        if (!m) continue;
        const i = Number(m[1]);
        failed.add(i);
        const list = failures.get(i) ?? [];
        list.push(`line ${Number(m[2]) - IMPORTS.split('\n').length - 3}: ${m[3]}`);
        failures.set(i, list);
      }
      if (failed.size === 0) throw new Error(`javac failed outside the methods (stubs?):\n${output}`);
      remaining = remaining.filter((i) => !failed.has(i));
    }
    return [...failures].sort((a, b) => a[0] - b[0]).map(([index, errors]) => ({ index, errors }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function reportFailures(failures: readonly CompileFailure[], methods: readonly string[]): void {
  for (const f of failures) {
    console.error(`method ${f.index} (line ${f.index + 1} of the JSONL) does not compile:`);
    for (const e of f.errors) console.error(`  ${e}`);
    console.error(methods[f.index].replace(/^/gm, '    | '));
  }
  console.error(`${failures.length} of ${methods.length} methods do not compile`);
}

if (process.argv[1] && /check-demo-compiles\.ts$/.test(process.argv[1])) {
  const file = process.argv[2] ?? 'public/demo/java-vulns.jsonl';
  const methods = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { code: string }).code);
  const failures = checkCompiles(methods);
  if (failures.length > 0) {
    reportFailures(failures, methods);
    process.exit(1);
  }
  console.log(`${file}: all ${methods.length} methods compile`);
}
