// Checks a document the way its readers will read it, and prints one JSON
// report on stdout for the schemas package's tests, which decide what fails:
//
//   node check.mjs yaml DOC.yaml DOC.json
//       {"yamlMatchesJson": bool}: the YAML, read by js-yaml, is the JSON.
//   node check.mjs parse DOC.yaml DOC.json
//       the above, plus "diagnostics" of the official AsyncAPI parser
//       (severity error, warning, information or hint).
//   node check.mjs asyncapi DOC.yaml DOC.json OUTDIR
//       the above, plus, when the document parsed, "models": the TypeScript
//       and Go models Modelina generates, each Go one written to
//       OUTDIR/<Model>.go (package models, JSON tags).
//
// It exits 0 whatever the verdicts, 2 when it could not run.
import { readFile, writeFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import path from 'node:path';
import yaml from 'js-yaml';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const severities = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'information',
  [DiagnosticSeverity.Hint]: 'hint',
};

async function main([mode, yamlFile, jsonFile, outDir]) {
  if (!['yaml', 'parse', 'asyncapi'].includes(mode) || !jsonFile || (mode === 'asyncapi' && !outDir)) {
    throw new Error('usage: check.mjs yaml|parse DOC.yaml DOC.json, or check.mjs asyncapi DOC.yaml DOC.json OUTDIR');
  }
  const text = await readFile(yamlFile, 'utf8');
  const want = JSON.parse(await readFile(jsonFile, 'utf8'));
  const report = { yamlMatchesJson: isDeepStrictEqual(yaml.load(text), want) };
  if (mode === 'yaml') {
    return report;
  }

  const { document, diagnostics } = await new Parser().parse(text, { source: path.resolve(yamlFile) });
  report.diagnostics = diagnostics.map((d) => ({
    severity: severities[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path.join('/'),
  }));
  if (!document || mode === 'parse') {
    return report;
  }
  // Loaded only here: Modelina takes a second to import.
  const { TypeScriptGenerator, GoGenerator, GO_COMMON_PRESET } = await import('@asyncapi/modelina');
  const ts = await new TypeScriptGenerator({ modelType: 'interface' }).generate(document);
  const go = await new GoGenerator({
    presets: [{ preset: GO_COMMON_PRESET, options: { addJsonTag: true } }],
  }).generateCompleteModels(document, { packageName: 'models' });
  for (const m of go) {
    await writeFile(path.join(outDir, `${m.modelName}.go`), m.result);
  }
  report.models = {
    typescript: ts.map((m) => ({ name: m.modelName, code: m.result })),
    go: go.map((m) => ({ name: m.modelName, file: `${m.modelName}.go` })),
  };
  return report;
}

try {
  process.stdout.write(JSON.stringify(await main(process.argv.slice(2))) + '\n');
} catch (err) {
  process.stderr.write(`check.mjs: ${err?.stack ?? err}\n`);
  process.exit(2);
}
