#!/usr/bin/env node
// Applies the extension's TextMate grammar (../syntaxes/pricing.tmLanguage.json)
// to a ruleset with vscode-textmate + vscode-oniguruma, the libraries VS Code
// itself uses, and writes a static HTML page with one coloured <span> per token
// (colours from a Dark+ theme resolved by vscode-textmate, so no wasm runs in
// the browser).  Then screenshots the page with headless Chromium.
//
//   node render.js [RULESET] [OUT.png]
// defaults: rulesets/contracts/umbrella.pricing -> docs/editor-highlighting.png
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const repo = path.resolve(__dirname, '..', '..', '..');
const rulesetPath = path.resolve(repo, process.argv[2] || 'rulesets/contracts/umbrella.pricing');
const outPng = path.resolve(repo, process.argv[3] || 'docs/editor-highlighting.png');
const grammarPath = path.resolve(__dirname, '..', 'syntaxes', 'pricing.tmLanguage.json');
const htmlPath = path.join(__dirname, 'highlighting.html');
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';

// VS Code's Dark+ colours for the scopes the grammar emits.
const theme = {
  name: 'Dark+ (subset)',
  settings: [
    { settings: { foreground: '#D4D4D4', background: '#1E1E1E' } },
    { scope: 'comment', settings: { foreground: '#6A9955' } },
    { scope: 'string', settings: { foreground: '#CE9178' } },
    { scope: 'constant.character.escape', settings: { foreground: '#D7BA7D' } },
    { scope: 'constant.numeric', settings: { foreground: '#B5CEA8' } },
    { scope: ['keyword', 'keyword.other'], settings: { foreground: '#569CD6' } },
    { scope: 'keyword.control', settings: { foreground: '#C586C0' } },
    { scope: ['keyword.operator', 'keyword.operator.word'], settings: { foreground: '#D4D4D4' } },
    { scope: 'storage.type', settings: { foreground: '#569CD6' } },
    { scope: 'variable', settings: { foreground: '#9CDCFE' } },
    { scope: 'punctuation.section.block', settings: { foreground: '#FFD700' } },
  ],
};

function escapeHtml(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

async function main() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (p) => new oniguruma.OnigScanner(p),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === 'source.pricing'
        ? vsctm.parseRawGrammar(fs.readFileSync(grammarPath, 'utf8'), grammarPath)
        : null,
    theme,
  });
  const grammar = await registry.loadGrammar('source.pricing');
  const colorMap = registry.getColorMap();
  const M = vsctm.EncodedTokenMetadata || null;

  const lines = fs.readFileSync(rulesetPath, 'utf8').replace(/\n$/, '').split('\n');
  let state = vsctm.INITIAL;
  const out = [];
  lines.forEach((line, i) => {
    const r = grammar.tokenizeLine2(line, state);
    const toks = r.tokens; // [start, metadata, start, metadata, ...]
    let html = '';
    for (let t = 0; t < toks.length; t += 2) {
      const start = toks[t];
      const end = t + 2 < toks.length ? toks[t + 2] : line.length;
      const meta = toks[t + 1];
      const fg = (meta & 0x00ff8000) >>> 15; // foreground colour index
      const fontStyle = (meta & 0x00007800) >>> 11;
      const style = [`color:${colorMap[fg]}`];
      if (fontStyle & 1) style.push('font-style:italic');
      if (fontStyle & 2) style.push('font-weight:bold');
      html += `<span style="${style.join(';')}">${escapeHtml(line.slice(start, end))}</span>`;
    }
    out.push(`<div class="l"><span class="n">${i + 1}</span>${html || ' '}</div>`);
    state = r.ruleStack;
  });

  const title = path.relative(repo, rulesetPath);
  fs.writeFileSync(htmlPath, `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
  body { margin: 0; background: #1E1E1E; }
  .tab { font: 13px system-ui, sans-serif; color: #FFFFFF; background: #252526;
         padding: 8px 16px; border-bottom: 1px solid #333; }
  pre { margin: 0; padding: 10px 0; font: 14px/20px "DejaVu Sans Mono", "Liberation Mono", monospace;
        color: #D4D4D4; }
  .n { display: inline-block; width: 3.5em; padding-right: 1.5em; text-align: right; color: #858585; }
  .l { white-space: pre; }
</style></head>
<body><div class="tab">${escapeHtml(title)} — Pricing (TextMate grammar source.pricing, Dark+ colours)</div>
<pre>${out.join('')}</pre></body></html>
`);
  console.log(`wrote ${path.relative(repo, htmlPath)}`);

  const height = 40 + 20 + lines.length * 20 + 10;
  fs.mkdirSync(path.dirname(outPng), { recursive: true });
  execFileSync(chromium, [
    '--headless', '--disable-gpu', '--no-sandbox', '--hide-scrollbars',
    `--screenshot=${outPng}`, `--window-size=1000,${height}`,
    'file://' + htmlPath,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  console.log(`wrote ${path.relative(repo, outPng)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
