// Tokenises every example .kyi file with the TextMate grammar, as VS Code does
// (vscode-textmate with the Oniguruma regex engine), and checks the scopes of key tokens.
// Run: npm test (in editors/vscode), or through tests/test_textmate.py.
import assert from "node:assert/strict";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import oniguruma from "vscode-oniguruma";
import vsctm from "vscode-textmate";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..", "..");
const grammarPath = path.join(here, "..", "syntaxes", "kokoyi.tmLanguage.json");

async function loadGrammar() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === "source.kokoyi" ? vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath) : null,
  });
  return registry.loadGrammar("source.kokoyi");
}

const grammar = await loadGrammar();

/** [{text, scopes}] for every token of every line of text. */
function tokenize(text) {
  let stack = vsctm.INITIAL;
  const out = [];
  text.split("\n").forEach((line, i) => {
    const result = grammar.tokenizeLine(line, stack);
    stack = result.ruleStack;
    for (const t of result.tokens) {
      out.push({ line: i + 1, column: t.startIndex + 1, text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes });
    }
  });
  return out;
}

function scopeOf(tokens, text) {
  const token = tokens.find((t) => t.text === text);
  assert.ok(token, `no token ${JSON.stringify(text)}`);
  return token.scopes.at(-1);
}

const examples = fs
  .readdirSync(path.join(root, "examples"), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) => fs.readdirSync(path.join(root, "examples", d.name))
    .filter((f) => f.endsWith(".kyi")).map((f) => path.join(root, "examples", d.name, f)));

test("the examples are found", () => {
  assert.ok(examples.length >= 6, `only ${examples.length} examples`);
});

for (const file of examples) {
  test(`every token of ${path.relative(root, file)} has a Kokoyi scope and none is invalid`, () => {
    const tokens = tokenize(fs.readFileSync(file, "utf8"));
    assert.ok(tokens.length > 50);
    for (const t of tokens) {
      if (t.text.trim() === "") continue;
      const where = `${path.basename(file)}:${t.line}:${t.column} ${JSON.stringify(t.text)}`;
      assert.ok(t.scopes.length > 1, `${where} has no scope beyond source.kokoyi`);
      assert.ok(!t.scopes.some((s) => s.startsWith("invalid")), `${where}: ${t.scopes.join(" ")}`);
    }
  });
}

test("key scopes", () => {
  const tokens = tokenize(
    "% a comment\n\\Module{Net}{x; W}\n" +
      "  y \\gets \\sum_{i=0}^{2} \\Softmax(W x)[i] \\cdot \\alpha \\infty \\Comment{note} \\\\\n" +
      "  \\Return \\hat{y} \\in \\mathbb{R} \\Softmx \\\\\n\\EndModule\n",
  );
  assert.equal(scopeOf(tokens, "% a comment"), "comment.line.percentage.kokoyi");
  assert.equal(scopeOf(tokens, "\\Module"), "keyword.control.kokoyi");
  assert.equal(scopeOf(tokens, "Net"), "entity.name.function.kokoyi");
  for (const word of ["\\gets", "\\Return", "\\in", "\\EndModule"]) {
    assert.equal(scopeOf(tokens, word), "keyword.control.kokoyi", word);
  }
  assert.equal(scopeOf(tokens, "\\sum"), "keyword.operator.word.kokoyi");
  assert.equal(scopeOf(tokens, "\\cdot"), "keyword.operator.word.kokoyi");
  assert.equal(scopeOf(tokens, "\\Softmax"), "support.function.builtin.kokoyi");
  assert.equal(scopeOf(tokens, "\\infty"), "constant.language.kokoyi");
  assert.equal(scopeOf(tokens, "\\alpha"), "variable.other.greek.kokoyi");
  assert.equal(scopeOf(tokens, "\\mathbb"), "storage.type.kokoyi");
  assert.equal(scopeOf(tokens, "{note}"), "comment.block.kokoyi");
  assert.equal(scopeOf(tokens, "\\\\"), "punctuation.terminator.statement.kokoyi");
  assert.equal(scopeOf(tokens, "\\Softmx"), "invalid.illegal.unknown-command.kokoyi");
  assert.equal(scopeOf(tokens, "W"), "variable.other.kokoyi");
  assert.equal(scopeOf(tokens, "0"), "constant.numeric.kokoyi");
  const cases = tokenize("\\begin{cases} 1 & x > 0 \\\\ 0 & \\text{otherwise} \\end{cases}");
  assert.equal(scopeOf(cases, "\\begin{cases}"), "keyword.control.environment.kokoyi");
  assert.equal(scopeOf(cases, "{otherwise}"), "string.unquoted.kokoyi");
});

test("every built-in is a builtin and no keyword is cut short", () => {
  // \in / \infty, \ln / \lnot, \max / \maximum share prefixes
  const tokens = tokenize("\\infty \\lnot \\ln \\maximum \\max \\SmoothL1 \\LogSoftmax");
  assert.deepEqual(
    tokens.filter((t) => t.text.trim()).map((t) => [t.text, t.scopes.at(-1)]),
    [
      ["\\infty", "constant.language.kokoyi"],
      ["\\lnot", "keyword.operator.word.kokoyi"],
      ["\\ln", "support.function.builtin.kokoyi"],
      ["\\maximum", "support.function.builtin.kokoyi"],
      ["\\max", "keyword.operator.word.kokoyi"],
      ["\\SmoothL1", "support.function.builtin.kokoyi"],
      ["\\LogSoftmax", "support.function.builtin.kokoyi"],
    ],
  );
});
