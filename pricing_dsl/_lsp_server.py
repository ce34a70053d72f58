"""`pricing lsp`: the Language Server Protocol over stdio, with pygls.

A thin layer: it keeps the open documents, turns protocol requests into
calls of the plain functions in :mod:`._lsp` and their answers into
protocol types.  Imported only by `pricing lsp`, so pygls stays optional
(the ``lsp`` extra).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from . import _lsp as L
from ._errors import Diagnostic

__all__ = ["build_server", "serve"]

# How long typing must pause before the workspace is checked again.
DEBOUNCE_SECONDS = 0.15
# And how much longer before the changed plans and contracts are linted: the
# linter rates each at many usage points, which on a plan that hundreds of
# contracts extend takes longer than a keystroke should wait.
LINT_DEBOUNCE_SECONDS = 0.35


class PricingServer(LanguageServer):
    """The server's state: one :class:`~._lsp.Project` per workspace folder."""

    def __init__(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            own = version("pricing-dsl")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            own = "0"
        super().__init__("pricing-dsl", own, text_document_sync_kind=T.TextDocumentSyncKind.Full)
        self.projects: dict[Path | None, L.Project] = {}
        self.published: dict[str, tuple[Diagnostic, ...]] = {}
        self.pending: asyncio.Task[None] | None = None

    # -- projects
    def roots(self) -> list[Path]:
        out = []
        for uri in self.workspace.folders:
            path = to_fs_path(uri)
            if path:
                out.append(Path(path).resolve())
        return sorted(out, key=lambda p: len(str(p)), reverse=True)

    def project_for(self, path: str) -> L.Project:
        """The project of the innermost workspace folder holding ``path``, else its own folder's."""
        for root in self.roots():
            if root in Path(path).parents:
                return self.project(root)
        return self.project(Path(path).parent)

    def project(self, root: Path | None) -> L.Project:
        found = self.projects.get(root)
        if found is None:
            found = self.projects[root] = L.Project(root)
        return found

    def located(self, uri: str) -> tuple[L.Project, str]:
        path = str(Path(to_fs_path(uri) or uri).resolve())
        return self.project_for(path), path

    # -- diagnostics
    def publish(self, project: L.Project, lint: bool = True) -> bool:
        """Publish the findings that changed; False if warnings are still to come."""
        an = project.analysis(lint)
        for path, diags in an.diagnostics.items():
            if not path:
                continue
            if self.published.get(path) == diags:
                continue
            self.published[path] = diags
            text = an.texts.get(path, "")
            self.text_document_publish_diagnostics(
                T.PublishDiagnosticsParams(
                    uri=from_fs_path(path) or path,
                    diagnostics=[to_diagnostic(d, text, self) for d in diags],
                )
            )
        return an.complete

    def schedule(self, project: L.Project) -> None:
        """Check again once typing pauses; each keystroke restarts the wait.

        Syntax and checker errors, and the warnings of what did not change,
        are published first; the warnings of changed plans and contracts
        after a longer pause, so that the findings end up those of
        `pricing check`.
        """
        if self.pending is not None:
            self.pending.cancel()

        async def later() -> None:
            await asyncio.sleep(DEBOUNCE_SECONDS)
            if not self.publish(project, lint=False):
                await asyncio.sleep(LINT_DEBOUNCE_SECONDS)
                self.publish(project)

        self.pending = asyncio.ensure_future(later())

    # -- positions in the client's encoding
    def to_client(self, r: L.Range, text: str) -> T.Range:
        lines = text.split("\n")
        codec = self.workspace.position_codec
        from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

        rng = ServerTextRange(
            start=ServerTextPosition(r.start_line, r.start_char),
            end=ServerTextPosition(r.end_line, r.end_char),
        )
        return codec.range_to_client_units(lines, rng)

    def from_client(self, pos: T.Position, text: str) -> tuple[int, int]:
        codec = self.workspace.position_codec
        p = codec.position_from_client_units(text.split("\n"), pos)
        return p.line, p.character


def to_diagnostic(d: Diagnostic, text: str, server: PricingServer) -> T.Diagnostic:
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    return T.Diagnostic(
        range=server.to_client(L.Range.of_diagnostic(d), text),
        message=message,
        severity=(
            T.DiagnosticSeverity.Error if d.severity == "error" else T.DiagnosticSeverity.Warning
        ),
        code=d.code,
        source="pricing",
        data={"hint": d.hint} if d.hint else None,
    )


_KINDS = {
    "keyword": T.CompletionItemKind.Keyword,
    "contract": T.CompletionItemKind.Class,
    "addon": T.CompletionItemKind.Module,
    "meter": T.CompletionItemKind.Field,
    "usage": T.CompletionItemKind.Variable,
    "unit": T.CompletionItemKind.Unit,
    "line": T.CompletionItemKind.EnumMember,
}


def build_server() -> PricingServer:
    """The language server with every feature registered."""
    server = PricingServer()

    def text_of(project: L.Project, path: str) -> str:
        return project.analysis().texts.get(path, "")

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: PricingServer, params: T.DidOpenTextDocumentParams) -> None:
        project, path = ls.located(params.text_document.uri)
        project.set_text(path, params.text_document.text)
        ls.publish(project)  # at once: the first diagnostics should not wait

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: PricingServer, params: T.DidChangeTextDocumentParams) -> None:
        project, path = ls.located(params.text_document.uri)
        doc = ls.workspace.get_text_document(params.text_document.uri)
        project.set_text(path, doc.source)
        ls.schedule(project)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: PricingServer, params: T.DidCloseTextDocumentParams) -> None:
        project, path = ls.located(params.text_document.uri)
        project.close(path)
        ls.publish(project)

    @server.feature(T.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched(ls: PricingServer, params: T.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            project, path = ls.located(change.uri)
            if path not in project.open:
                project.reload(path)
            ls.publish(project)

    @server.feature(T.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: PricingServer, params: T.DocumentFormattingParams) -> list[T.TextEdit]:
        project, path = ls.located(params.text_document.uri)
        text = text_of(project, path)
        new = L.format_document(text, path)
        if new is None or new == text:
            return []
        return [T.TextEdit(range=ls.to_client(L.whole(text), text), new_text=new)]

    def locations(ls: PricingServer, project: L.Project, found: list[L.Location]) -> list[Any]:
        an = project.analysis()
        return [
            T.Location(
                uri=from_fs_path(loc.path) or loc.path,
                range=ls.to_client(loc.range, an.texts.get(loc.path, "")),
            )
            for loc in found
        ]

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: PricingServer, params: T.DefinitionParams) -> list[T.Location]:
        project, path = ls.located(params.text_document.uri)
        line, char = ls.from_client(params.position, text_of(project, path))
        return locations(ls, project, L.definition(project.analysis(), path, line, char))

    @server.feature(T.TEXT_DOCUMENT_REFERENCES)
    def references(ls: PricingServer, params: T.ReferenceParams) -> list[T.Location]:
        project, path = ls.located(params.text_document.uri)
        line, char = ls.from_client(params.position, text_of(project, path))
        found = L.references(
            project.analysis(), path, line, char, params.context.include_declaration
        )
        return locations(ls, project, found)

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def hover(ls: PricingServer, params: T.HoverParams) -> T.Hover | None:
        project, path = ls.located(params.text_document.uri)
        text = text_of(project, path)
        line, char = ls.from_client(params.position, text)
        found = L.hover(project.analysis(), path, line, char, project.root)
        if found is None:
            return None
        markdown, where = found
        return T.Hover(
            contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=markdown),
            range=ls.to_client(where, text),
        )

    @server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[" ", ","]))
    def completion(ls: PricingServer, params: T.CompletionParams) -> T.CompletionList:
        project, path = ls.located(params.text_document.uri)
        text = text_of(project, path)
        line, char = ls.from_client(params.position, text)
        items = [
            T.CompletionItem(label=c.label, kind=_KINDS.get(c.kind), detail=c.detail or None)
            for c in L.completions(project.analysis(), path, text, line, char)
        ]
        return T.CompletionList(is_incomplete=False, items=items)

    @server.feature(
        T.TEXT_DOCUMENT_CODE_ACTION,
        T.CodeActionOptions(code_action_kinds=[T.CodeActionKind.QuickFix]),
    )
    def code_action(ls: PricingServer, params: T.CodeActionParams) -> list[T.CodeAction]:
        project, path = ls.located(params.text_document.uri)
        an = project.analysis()
        text = an.texts.get(path, "")
        want = params.range
        out = []
        for d in an.diagnostics.get(path, ()):
            r = ls.to_client(L.Range.of_diagnostic(d), text)
            if (r.end.line, r.end.character) < (want.start.line, want.start.character) or (
                r.start.line,
                r.start.character,
            ) > (want.end.line, want.end.character):
                continue
            for fix in L.quick_fixes(d, text):
                edits = [
                    T.TextEdit(range=ls.to_client(e.range, text), new_text=e.text)
                    for e in fix.edits
                ]
                out.append(
                    T.CodeAction(
                        title=fix.title,
                        kind=T.CodeActionKind.QuickFix,
                        diagnostics=[to_diagnostic(d, text, ls)],
                        edit=T.WorkspaceEdit(changes={params.text_document.uri: edits}),
                        is_preferred=True,
                    )
                )
        return out

    @server.feature(T.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: PricingServer, params: T.CodeLensParams) -> list[T.CodeLens]:
        project, path = ls.located(params.text_document.uri)
        an = project.analysis()
        text = an.texts.get(path, "")
        return [
            T.CodeLens(
                range=ls.to_client(lens.range, text),
                # The extension shows the details when the lens is clicked.
                command=T.Command(
                    title=lens.title,
                    command="pricing.showTestResult" if lens.details else "",
                    arguments=[lens.details] if lens.details else None,
                ),
            )
            for lens in L.code_lenses(an, path)
        ]

    return server


def serve() -> int:
    """Run the server on standard input and output until the client says exit."""
    build_server().start_io()
    return 0
