// The VS Code client: starts `pricing lsp` and hands .pricing files to it.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace
    .getConfiguration("pricing")
    .get("server.command", ["pricing", "lsp"]);
  client = new LanguageClient(
    "pricing",
    "Pricing language server",
    { command, args },
    {
      documentSelector: [{ scheme: "file", language: "pricing" }],
      synchronize: {
        // Files changed outside the editor are re-read by the server.
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.pricing"),
      },
    }
  );
  context.subscriptions.push(
    // A failing test's code lens passes its differences here.
    vscode.commands.registerCommand("pricing.showTestResult", (details) => {
      vscode.window.showInformationMessage(String(details), { modal: true });
    })
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
