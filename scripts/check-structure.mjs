#!/usr/bin/env node
/**
 * Structure check (issue 10): every src file under 500 lines (src/testing
 * excluded), every function, method or arrow under 80 lines, and no import
 * cycle among src modules, type-only imports and re-exports included.
 * Prints what it finds and exits 1 when anything is found.
 *
 *   node scripts/check-structure.mjs [--root <dir>]
 */
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const MAX_FILE_LINES = 500;
const MAX_FUNCTION_LINES = 80;

const rootArg = process.argv.indexOf('--root');
const root = resolve(rootArg === -1 ? process.cwd() : process.argv[rootArg + 1]);
const src = join(root, 'src');

/** Every .ts file under `dir`, declaration files left out. */
function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mts|cts|tsx)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

const rel = (path) => relative(root, path).split(sep).join('/');
const isTesting = (path) => rel(path).startsWith('src/testing/');

/** The file a relative specifier names, as the bundler resolves it; undefined for packages. */
function resolveImport(from, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  const candidates = [base, `${base}.ts`, `${base}.tsx`, join(base, 'index.ts'), base.replace(/\.js$/, '.ts')];
  return candidates.find((candidate) => existsSync(candidate) && statSync(candidate).isFile());
}

function functionName(node, sourceFile) {
  if (node.name) return node.name.getText(sourceFile);
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(sourceFile);
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(sourceFile);
  if (parent && ts.isPropertyDeclaration(parent)) return parent.name.getText(sourceFile);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  return '(anonymous)';
}

const problems = { files: [], functions: [], cycles: [] };
const graph = new Map();
const files = sourceFiles(src);

for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const sourceFile = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lines = sourceFile.getLineAndCharacterOfPosition(text.length).line + (text.endsWith('\n') ? 0 : 1);
  if (!isTesting(file) && lines > MAX_FILE_LINES) problems.files.push(`${rel(file)}: ${lines} lines (max ${MAX_FILE_LINES})`);

  const edges = new Set();
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const target = resolveImport(file, node.moduleSpecifier.text);
      if (target) edges.add(target);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      const target = resolveImport(file, node.argument.literal.text);
      if (target) edges.add(target);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      const target = resolveImport(file, node.arguments[0].text);
      if (target) edges.add(target);
    }
    if (
      !isTesting(file) &&
      (ts.isFunctionDeclaration(node) ||
        ts.isFunctionExpression(node) ||
        ts.isArrowFunction(node) ||
        ts.isMethodDeclaration(node) ||
        ts.isConstructorDeclaration(node) ||
        ts.isGetAccessorDeclaration(node) ||
        ts.isSetAccessorDeclaration(node)) &&
      node.body
    ) {
      const start = sourceFile.getLineAndCharacterOfPosition(node.getStart(sourceFile)).line;
      const end = sourceFile.getLineAndCharacterOfPosition(node.getEnd()).line;
      const length = end - start + 1;
      if (length > MAX_FUNCTION_LINES) {
        problems.functions.push(`${rel(file)}:${start + 1}: ${functionName(node, sourceFile)} is ${length} lines (max ${MAX_FUNCTION_LINES})`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  graph.set(file, [...edges].sort());
}

// Import cycles: strongly connected components (Tarjan), one report each, with one cycle path through it.
let index = 0;
const indices = new Map();
const lowlink = new Map();
const stack = [];
const onStack = new Set();
const components = [];
function strongConnect(node) {
  indices.set(node, index);
  lowlink.set(node, index);
  index++;
  stack.push(node);
  onStack.add(node);
  for (const next of graph.get(node) ?? []) {
    if (!graph.has(next)) continue;
    if (!indices.has(next)) {
      strongConnect(next);
      lowlink.set(node, Math.min(lowlink.get(node), lowlink.get(next)));
    } else if (onStack.has(next)) {
      lowlink.set(node, Math.min(lowlink.get(node), indices.get(next)));
    }
  }
  if (lowlink.get(node) === indices.get(node)) {
    const component = [];
    let member;
    do {
      member = stack.pop();
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    const selfLoop = (graph.get(node) ?? []).includes(node);
    if (component.length > 1 || selfLoop) components.push(component);
  }
}
for (const file of files) if (!indices.has(file)) strongConnect(file);

/** A shortest path from `start` back to itself inside `members` (breadth first). */
function cycleThrough(start, members) {
  const inside = new Set(members);
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const at = queue.shift();
    for (const next of graph.get(at) ?? []) {
      if (!inside.has(next)) continue;
      if (next === start) {
        const path = [start];
        for (let step = at; step !== start; step = previous.get(step)) path.splice(1, 0, step);
        return [...path, start];
      }
      if (!previous.has(next)) {
        previous.set(next, at);
        queue.push(next);
      }
    }
  }
  return [start, start];
}
for (const component of components) {
  const start = [...component].sort()[0];
  problems.cycles.push(`${component.length} modules: ${cycleThrough(start, component).map(rel).join(' → ')}`);
}

const total = problems.files.length + problems.functions.length + problems.cycles.length;
const section = (title, list) => {
  if (list.length === 0) return;
  console.log(`${title} (${list.length}):`);
  for (const line of list) console.log(`  ${line}`);
};
section(`Files over ${MAX_FILE_LINES} lines`, problems.files);
section(`Functions over ${MAX_FUNCTION_LINES} lines`, problems.functions);
section('Import cycles (type-only imports included)', problems.cycles);
if (total === 0) {
  console.log(`check-structure: ${files.length} files, no file over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES} lines, no import cycle.`);
} else {
  console.log(`check-structure: ${total} problem(s) in ${files.length} files.`);
  process.exitCode = 1;
}
