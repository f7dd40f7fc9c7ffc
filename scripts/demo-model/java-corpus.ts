/**
 * A seeded generator of small Java methods (servlets, JDBC, file and crypto code, some with classic
 * vulnerabilities, some safe), used to train the demo model's tokenizer. Deterministic for a seed.
 */
import { Rng } from '../../src/engine/random.ts';

const TYPES = [
  'String',
  'int',
  'long',
  'boolean',
  'byte[]',
  'List<String>',
  'Map<String, Object>',
  'File',
  'Connection',
];
const NAMES = [
  'user',
  'name',
  'path',
  'query',
  'id',
  'token',
  'password',
  'input',
  'data',
  'file',
  'count',
  'result',
  'request',
  'response',
  'buffer',
  'key',
  'value',
  'index',
  'account',
  'session',
];
const VERBS = [
  'get',
  'load',
  'find',
  'read',
  'write',
  'update',
  'delete',
  'check',
  'parse',
  'handle',
  'process',
  'build',
];
const NOUNS = [
  'User',
  'Account',
  'File',
  'Report',
  'Order',
  'Session',
  'Config',
  'Token',
  'Record',
  'Message',
  'Image',
];

type Template = (r: Rng) => string;

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(xs.length)];
const method = (r: Rng): string => `${pick(r, VERBS)}${pick(r, NOUNS)}`;
const ident = (r: Rng): string => pick(r, NAMES);

const TEMPLATES: Template[] = [
  (r) => {
    const v = ident(r);
    return `public ${pick(r, NOUNS)} ${method(r)}(Connection conn, String ${v}) throws SQLException {
    Statement stmt = conn.createStatement();
    ResultSet rs = stmt.executeQuery("SELECT * FROM users WHERE name = '" + ${v} + "'");
    if (rs.next()) {
        return new ${pick(r, NOUNS)}(rs.getString("name"), rs.getInt("age"));
    }
    return null;
}
`;
  },
  (r) => {
    const v = ident(r);
    return `public ${pick(r, NOUNS)} ${method(r)}(Connection conn, String ${v}) throws SQLException {
    PreparedStatement ps = conn.prepareStatement("SELECT * FROM accounts WHERE id = ?");
    ps.setString(1, ${v});
    try (ResultSet rs = ps.executeQuery()) {
        return rs.next() ? map(rs) : null;
    }
}
`;
  },
  (r) => {
    const v = ident(r);
    return `protected void doGet(HttpServletRequest request, HttpServletResponse response) throws IOException {
    String ${v} = request.getParameter("${v}");
    response.setContentType("text/html");
    PrintWriter out = response.getWriter();
    out.println("<h1>Hello " + ${v} + "</h1>");
}
`;
  },
  (r) => {
    const v = ident(r);
    return `public byte[] ${method(r)}(String ${v}) throws IOException {
    File f = new File(BASE_DIR, ${v});
    if (!f.getCanonicalPath().startsWith(new File(BASE_DIR).getCanonicalPath())) {
        throw new SecurityException("path traversal: " + ${v});
    }
    return Files.readAllBytes(f.toPath());
}
`;
  },
  (r) => {
    const v = ident(r);
    return `public void ${method(r)}(String ${v}) throws Exception {
    Runtime.getRuntime().exec("ping -c 1 " + ${v});
}
`;
  },
  (r) => {
    const n = 1 + r.int(64);
    return `public static int ${method(r)}(int[] values) {
    int sum = 0;
    for (int i = 0; i < values.length; i++) {
        if (values[i] > ${n}) {
            sum += values[i] * ${n};
        }
    }
    return sum;
}
`;
  },
  (r) => {
    const v = ident(r);
    return `public String ${method(r)}(String ${v}) throws NoSuchAlgorithmException {
    MessageDigest md = MessageDigest.getInstance("${pick(r, ['MD5', 'SHA-1', 'SHA-256'])}");
    byte[] digest = md.digest(${v}.getBytes(StandardCharsets.UTF_8));
    StringBuilder sb = new StringBuilder();
    for (byte b : digest) {
        sb.append(String.format("%02x", b));
    }
    return sb.toString();
}
`;
  },
  (r) => {
    const t = pick(r, TYPES);
    const v = ident(r);
    return `private ${t} ${v};

public ${t} get${v[0].toUpperCase()}${v.slice(1)}() {
    return this.${v};
}

public void set${v[0].toUpperCase()}${v.slice(1)}(${t} ${v}) {
    this.${v} = ${v};
}
`;
  },
  (r) => {
    const v = ident(r);
    return `public Object ${method(r)}(byte[] ${v}) throws IOException, ClassNotFoundException {
    ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(${v}));
    return in.readObject();
}
`;
  },
  (r) => {
    const v = ident(r);
    return `@Override
public boolean equals(Object o) {
    if (this == o) return true;
    if (!(o instanceof ${pick(r, NOUNS)})) return false;
    ${pick(r, NOUNS)} other = (${pick(r, NOUNS)}) o;
    return Objects.equals(${v}, other.${v}) && count == other.count;
}
`;
  },
];

const WORDS = (
  'the a an of to in for on with by from at as is are be this that it returns value values user users input ' +
  'output request response file files path paths query database table row rows column name names id ids ' +
  'token tokens password session cookie header headers body string strings number numbers list map set ' +
  'array index count size length buffer stream reader writer socket server client connection statement ' +
  'result results error errors exception exceptions message messages log logger level debug info warn ' +
  'check checks validate validates sanitize sanitizes escape escapes encode decode hash salt key keys ' +
  'secret encrypt decrypt cipher random secure unsafe safe untrusted trusted data object objects class ' +
  'method methods field fields private public static final null empty true false new create update delete ' +
  'read write open close load save parse format convert copy move allow deny permission role admin ' +
  'account order report image upload download directory temp cache config property properties system'
).split(' ');
const SYLLABLES = [
  'ac',
  'co',
  'un',
  'ter',
  'pro',
  'cess',
  'han',
  'dle',
  'val',
  'id',
  'ate',
  'ser',
  'vice',
  'man',
  'ager',
  'fac',
  'tory',
  'util',
  'help',
  'er',
  'data',
  'src',
  'dst',
  'tmp',
  'cfg',
  'msg',
  'req',
  'res',
];

function camel(r: Rng): string {
  const n = 2 + r.int(3);
  let s = '';
  for (let i = 0; i < n; i++) {
    const syl = pick(r, SYLLABLES);
    s += i > 0 && r.next() < 0.4 ? syl[0].toUpperCase() + syl.slice(1) : syl;
  }
  return s;
}

function comment(r: Rng): string {
  const n = 6 + r.int(14);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(r.next() < 0.15 ? camel(r) : pick(r, WORDS));
  words[0] = words[0][0].toUpperCase() + words[0].slice(1);
  return `/**\n * ${words.join(' ')}.\n * @param ${pick(r, NAMES)} the ${pick(r, WORDS)}\n */\n`;
}

function helper(r: Rng): string {
  const a = camel(r);
  const b = camel(r);
  const n = r.int(1000);
  return `static ${pick(r, TYPES)} ${a}(${pick(r, TYPES)} ${b}) {
    // ${pick(r, WORDS)} ${pick(r, WORDS)} ${pick(r, WORDS)} ${n}
    return ${b}.${camel(r)}(${n}, "${pick(r, WORDS)}_${pick(r, WORDS)}");
}
`;
}

/** `count` Java methods, deterministic for `seed`. */
export function javaCorpus(seed: number, count: number): string[] {
  const r = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const body = r.next() < 0.4 ? helper(r) : pick(r, TEMPLATES)(r);
    out.push((r.next() < 0.6 ? comment(r) : '') + body);
  }
  return out;
}
