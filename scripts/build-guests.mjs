#!/usr/bin/env node
// Builds the example guests into guests/out/. Run by scripts/setup on every
// setup, so it is idempotent and silent when nothing changed:
//
//   guests/c/<name>.c           -> guests/out/<name>.wasm             (clang, wasm32-wasi)
//   guests/wasi-tests/<name>.c  -> guests/out/wasi-tests/<name>.wasm  (clang, wasm32-wasi)
//   guests/as/<name>.ts         -> guests/out/<name>.wasm             (asc; entry files only,
//                                                                      shared code in guests/as/lib/)
//
// Markers, in the comment lines at the very top of a source file:
//   // understudy: reactor            a reactor (exports _initialize and handlers)
//                                     instead of a command (exports _start)
//   // understudy: cflags <flags...>  extra clang flags (C only)
//   // understudy: ascflags <flags..> extra asc flags (AssemblyScript only)
//
// A target is skipped when its output is newer than every input: the source,
// the headers beside it and in guests/sdk/, shared AssemblyScript code, the
// compiler package (asc) and this script. Prints one line per built guest.
// Node built-ins only.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), "..");
const GUESTS = path.join(ROOT, "guests");
const OUT = path.join(GUESTS, "out");
const SDK = path.join(GUESTS, "sdk");
const ASC_PACKAGE = path.join(ROOT, "node_modules", "assemblyscript");
const ASC = path.join(ASC_PACKAGE, "bin", "asc.js");

// Marker lines are looked for only in the leading comment block, and only
// this many lines deep: a marker is a declaration, not something buried.
const MARKER_LINES_MAX = 20;
// A compiler that runs this long is hung, not slow (a guest builds in < 10 s).
const COMPILE_TIMEOUT_MS = 120_000;

const CFLAGS = ["--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", `-I${SDK}`];
const ASCFLAGS = [
  "--optimize",
  "--runtime", "incremental",
  "--noColors",
  // AssemblyScript's abort stays the `env.abort` import, which understudy
  // provides (it ends the guest with the message). Routing it through WASI
  // fd_write instead would make every bounds check a path to a safe-point
  // import, and Asyncify would instrument every function with one (measured:
  // primes ran 1.5x slower that way; see docs/benchmarks.md).
];

class BuildError extends Error {}

function rel(p) {
  return path.relative(ROOT, p);
}

function listFiles(dir, test) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && test(e.name))
    .map((e) => path.join(dir, e.name))
    .sort();
}

function listTree(dir, test) {
  if (!fs.existsSync(dir)) return [];
  const found = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) found.push(...listTree(p, test));
    else if (e.isFile() && test(e.name)) found.push(p);
  }
  return found.sort();
}

function readMarkers(source) {
  const markers = { reactor: false, cflags: [], ascflags: [] };
  const lines = fs.readFileSync(source, "utf8").split("\n", MARKER_LINES_MAX);
  for (const line of lines) {
    const trimmed = line.trim();
    if (!trimmed.startsWith("//")) break;
    const m = /^\/\/\s*understudy:\s*(\S+)\s*(.*)$/.exec(trimmed);
    if (!m) continue;
    const [, key, rest] = m;
    const words = rest.split(/\s+/).filter(Boolean);
    if (key === "reactor") markers.reactor = true;
    else if (key === "cflags") markers.cflags.push(...words);
    else if (key === "ascflags") markers.ascflags.push(...words);
    else throw new BuildError(`${rel(source)}: unknown marker "understudy: ${key}"`);
  }
  return markers;
}

function mtimeMs(p) {
  return fs.statSync(p).mtimeMs;
}

function upToDate(output, inputs) {
  if (!fs.existsSync(output)) return false;
  const built = mtimeMs(output);
  return inputs.every((i) => mtimeMs(i) < built);
}

function run(source, file, args) {
  try {
    execFileSync(file, args, {
      cwd: ROOT,
      stdio: ["ignore", "inherit", "inherit"],
      timeout: COMPILE_TIMEOUT_MS,
    });
  } catch (err) {
    const why = err.code === "ENOENT" ? `${path.basename(file)} not found` :
      err.signal ? `killed by ${err.signal}` : `exit status ${err.status}`;
    throw new BuildError(`failed to compile ${rel(source)} (${why})`);
  }
}

// Compiles into a temporary file and renames it into place, so a failed or
// interrupted build never leaves an output that looks up to date.
function build(target) {
  fs.mkdirSync(path.dirname(target.output), { recursive: true });
  const tmp = `${target.output}.tmp-${process.pid}`;
  try {
    target.compile(tmp);
    fs.renameSync(tmp, target.output);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

// Quoted #include lines of a C file (a guest may include another guest's
// source, as kvballoon.c includes kvstore.c), followed transitively inside
// the guest's folder, so that a change to an included file rebuilds it.
// Headers are inputs of every guest already.
const INCLUDE_RE = /^\s*#\s*include\s+"([^"]+\.c)"/gm;
function includedSources(source, seen = new Set()) {
  for (const m of fs.readFileSync(source, "utf8").matchAll(INCLUDE_RE)) {
    const file = path.resolve(path.dirname(source), m[1]);
    if (seen.has(file) || !fs.existsSync(file)) continue;
    seen.add(file);
    includedSources(file, seen);
  }
  return [...seen];
}

function cTargets(srcDir, outDir) {
  const sdkHeaders = listTree(SDK, (n) => n.endsWith(".h"));
  const localHeaders = listFiles(srcDir, (n) => n.endsWith(".h"));
  return listFiles(srcDir, (n) => n.endsWith(".c")).map((source) => {
    const markers = readMarkers(source);
    const output = path.join(outDir, path.basename(source, ".c") + ".wasm");
    return {
      source,
      output,
      kind: markers.reactor ? "reactor" : "command",
      inputs: [source, SCRIPT, ...sdkHeaders, ...localHeaders, ...includedSources(source)],
      compile: (tmp) => {
        const model = markers.reactor ? ["-mexec-model=reactor"] : [];
        run(source, "clang", [...CFLAGS, ...model, ...markers.cflags, source, "-o", tmp]);
      },
    };
  });
}

function asTargets(srcDir, outDir) {
  const shared = [
    ...listTree(path.join(srcDir, "lib"), (n) => n.endsWith(".ts")),
    ...listTree(path.join(SDK, "as"), (n) => n.endsWith(".ts")),
  ];
  const ascPackage = path.join(ASC_PACKAGE, "package.json");
  return listFiles(srcDir, (n) => n.endsWith(".ts")).map((source) => {
    const markers = readMarkers(source);
    const output = path.join(outDir, path.basename(source, ".ts") + ".wasm");
    return {
      source,
      output,
      kind: markers.reactor ? "reactor" : "command",
      inputs: [source, SCRIPT, ...shared, ...(fs.existsSync(ascPackage) ? [ascPackage] : [])],
      compile: (tmp) => {
        if (!fs.existsSync(ASC)) {
          throw new BuildError(`failed to compile ${rel(source)} (asc not installed: ${rel(ASC)})`);
        }
        // asc runs the wasm start function on instantiation unless it is
        // exported; export it under the WASI name the host calls instead.
        const start = markers.reactor ? "_initialize" : "_start";
        run(source, process.execPath, [
          ASC, rel(source), ...ASCFLAGS, "--exportStart", start, ...markers.ascflags,
          "--outFile", rel(tmp),
        ]);
      },
    };
  });
}

function main() {
  const targets = [
    ...cTargets(path.join(GUESTS, "c"), OUT),
    ...cTargets(path.join(GUESTS, "wasi-tests"), path.join(OUT, "wasi-tests")),
    ...asTargets(path.join(GUESTS, "as"), OUT),
  ];
  const outputs = new Map();
  for (const t of targets) {
    const other = outputs.get(t.output);
    if (other) {
      throw new BuildError(`${rel(t.source)} and ${rel(other)} both build ${rel(t.output)}`);
    }
    outputs.set(t.output, t.source);
  }
  for (const t of targets) {
    if (upToDate(t.output, t.inputs)) continue;
    build(t);
    const kib = Math.ceil(fs.statSync(t.output).size / 1024);
    console.log(`build-guests: ${rel(t.output)} (${t.kind}, ${kib} KiB) from ${rel(t.source)}`);
  }
}

try {
  main();
} catch (err) {
  if (err instanceof BuildError) {
    console.error(`build-guests: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
