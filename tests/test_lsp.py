"""The language server: its plain functions, and `pricing lsp` driven over stdio by a client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_dsl import _lsp as L
from pricing_dsl._ruleset import check_paths

DATA = Path(__file__).resolve().parent / "data"

CATALOG = """\
currency USD
addon hipaa "HIPAA compliance" 500.00 per month
meter sms "SMS" unit message

plan starter "Starter" {
  base 99.00 per month
  mau included 1000 overage 0.12 per user
}
"""

ACME = """\
contract acme "Acme" extends starter {
  base 529.00 per month
  addons hipaa
  discount 10% on mau_overage
  when mau > 5000 {
    mau overage 0.13 per user
  }
}
"""

TESTS = """\
test "starter passes" {
  contract starter
  period 2026-08
  usage { mau 1001 }
  expect mau_overage 0.12
}

test "acme fails" {
  contract acme
  period 2026-08
  usage { mau 1000 }
  expect base 1.00
}
"""


@pytest.fixture
def project(tmp_path: Path) -> L.Project:
    (tmp_path / "catalog.pricing").write_text(CATALOG)
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "acme.pricing").write_text(ACME)
    (tmp_path / "tests.pricing").write_text(TESTS)
    return L.Project(tmp_path.resolve())


def path(project: L.Project, name: str) -> str:
    assert project.root is not None
    return str(project.root / name)


# ------------------------------------------------------------ diagnostics


def test_diagnostics_are_those_of_pricing_check(tmp_path: Path) -> None:
    (tmp_path / "a.pricing").write_text(CATALOG + 'plan p "P" extends startr {\n}\n')
    (tmp_path / "b.pricing").write_text('plan q "Q" {\n  base 5 per month\n  mau 1,000\n}\n')
    project = L.Project(tmp_path.resolve())
    an = project.analysis()
    _, expected = check_paths(tmp_path, warnings=True)
    got = [d for p in sorted(an.diagnostics) for d in an.diagnostics[p]]
    assert [(d.code, d.path, d.line, d.column, d.end_column, d.message, d.hint) for d in got] == [
        (
            d.code,
            str(Path(d.path).resolve()),
            d.line,
            d.column,
            d.end_column,
            d.message,
            d.hint,
        )
        for d in expected
    ]
    assert [d.code for d in got] == ["E102"]


def test_warnings_are_reported_too(tmp_path: Path) -> None:
    (tmp_path / "a.pricing").write_text(
        CATALOG + 'plan p "P" extends starter {\n  base 99.00 per month\n}\n'
    )
    an = L.Project(tmp_path.resolve()).analysis()
    (w,) = an.diagnostics[str((tmp_path / "a.pricing").resolve())]
    assert (w.code, w.severity, w.line) == ("W101", "warning", 10)


def test_an_open_document_overrides_the_file_on_disk(project: L.Project) -> None:
    acme = path(project, "contracts/acme.pricing")
    project.set_text(acme, ACME.replace("extends starter", "extends startr"))
    (d,) = project.analysis().diagnostics[acme]
    assert d.code == "E201"
    assert L.Range.of_diagnostic(d) == L.Range(0, 29, 0, 35)
    assert "did you mean `starter`?" in d.message
    project.close(acme)
    assert project.analysis().diagnostics[acme] == ()


def test_unchanged_files_are_not_parsed_again(project: L.Project, monkeypatch) -> None:
    project.analysis()
    from pricing_dsl import _incremental

    parsed = []
    real = _incremental.parse

    def spy(text: str, name: str):  # type: ignore[no-untyped-def]
        parsed.append(name)
        return real(text, name)

    monkeypatch.setattr(_incremental, "parse", spy)
    acme = path(project, "contracts/acme.pricing")
    project.set_text(acme, ACME + "\n")
    project.analysis()
    assert parsed == [acme]


# ------------------------------------------------------------ navigation


def test_definition_of_extends_addon_meter_and_test_contract(project: L.Project) -> None:
    an = project.analysis()
    acme, cat, tests = (
        path(project, n) for n in ("contracts/acme.pricing", "catalog.pricing", "tests.pricing")
    )
    assert L.definition(an, acme, 0, 30) == [L.Location(cat, L.Range(4, 5, 4, 12))]
    assert L.definition(an, acme, 2, 10) == [L.Location(cat, L.Range(1, 6, 1, 11))]
    assert L.definition(an, tests, 8, 12) == [L.Location(acme, L.Range(0, 9, 0, 13))]
    # A custom meter's id in a clause, and its usage key in a test.
    with_sms = ACME.replace("  addons hipaa\n", "  addons hipaa\n  sms 0.01 per message\n")
    project.set_text(acme, with_sms)
    an = project.analysis()
    assert L.definition(an, acme, 3, 3) == [L.Location(cat, L.Range(2, 6, 2, 9))]


def test_references_of_a_plan_across_files(project: L.Project) -> None:
    an = project.analysis()
    cat, acme, tests = (
        path(project, n) for n in ("catalog.pricing", "contracts/acme.pricing", "tests.pricing")
    )
    assert L.references(an, cat, 4, 7) == [
        L.Location(cat, L.Range(4, 5, 4, 12)),
        L.Location(acme, L.Range(0, 29, 0, 36)),
        L.Location(tests, L.Range(1, 11, 1, 18)),
    ]
    assert L.references(an, cat, 4, 7, include_declaration=False)[0].path == acme


# ----------------------------------------------------------------- hover


def test_hover_on_a_contract_shows_resolved_terms_with_sources(project: L.Project) -> None:
    an = project.analysis()
    text, where = L.hover(an, path(project, "tests.pricing"), 8, 11, project.root) or ("", None)
    assert where == L.Range(8, 11, 8, 15)
    assert text.splitlines()[0] == '**contract `acme`** "Acme"'
    assert "| base | 529.00 | contracts/acme.pricing:2 |" in text
    assert "| meter mau allowance | 1000 | catalog.pricing:7 |" in text
    assert "| addons | hipaa | contracts/acme.pricing:3 |" in text
    assert "- meter mau rate = 0.13 (contracts/acme.pricing:6)" in text


def test_hover_on_a_clause_says_what_it_overrides(project: L.Project) -> None:
    an = project.analysis()
    acme = path(project, "contracts/acme.pricing")
    text, where = L.hover(an, acme, 1, 4, project.root) or ("", None)
    assert text == "overrides base = 99.00 from `starter` (catalog.pricing:6)"
    assert where == L.Range(1, 2, 1, 23)
    text, _ = L.hover(an, acme, 5, 6, project.root) or ("", None)
    assert text == (
        "overrides meter mau rate = 0.12 from `acme` outside this block (catalog.pricing:7)"
    )


def test_hover_on_a_line_code_shows_its_formula(project: L.Project) -> None:
    an = project.analysis()
    acme = path(project, "contracts/acme.pricing")
    text, where = L.hover(an, acme, 3, 20, project.root) or ("", None)
    assert where == L.Range(3, 18, 3, 29)
    assert text.splitlines()[0] == ("`mau_overage` = max(0, mau − 1000 included) × 0.12 per user")
    text, _ = L.hover(an, path(project, "tests.pricing"), 11, 10, project.root) or ("", None)
    assert text.startswith("`base` = 529.00 per month × months of the period")


# ------------------------------------------------------------ completion


def labels(project: L.Project, name: str, text: str, line: int, char: int) -> list[str]:
    p = path(project, name)
    project.set_text(p, text)
    return [c.label for c in L.completions(project.analysis(), p, text, line, char)]


def test_completion_of_ids_units_and_line_codes(project: L.Project) -> None:
    new = 'contract b "B" extends '
    assert labels(project, "b.pricing", new, 0, len(new)) == ["acme", "starter"]
    text = 'contract b "B" extends starter {\n  addons \n}\n'
    assert labels(project, "b.pricing", text, 1, 9) == ["hipaa"]
    # While `b` is half-typed it does not parse: its lines are those it last had.
    labels(project, "b.pricing", 'contract b "B" extends starter {\n  addons hipaa\n}\n', 0, 0)
    text = 'contract b "B" extends starter {\n  addons hipaa\n  discount 5% on \n}\n'
    assert labels(project, "b.pricing", text, 2, 17) == [
        "addon.hipaa",
        "addons",
        "base",
        "concurrency_overage",
        "mau_overage",
        "usage",
        "video",
        "voice",
    ]
    # A cap or a line minimum may target any line of the contract, or a group.
    text = 'contract b "B" extends starter {\n  cap \n}\n'
    capped = labels(project, "b.pricing", text, 1, 6)
    assert {"mau_overage", "concurrency_overage", "base", "usage", "addons"} <= set(capped)
    assert not any(c.startswith(("discount.", "cap.")) for c in capped)
    text = 'contract b "B" extends starter {\n  minimum \n}\n'
    assert "video" in labels(project, "b.pricing", text, 1, 10)
    text = 'contract b "B" extends starter {\n  base 5 per \n}\n'
    assert labels(project, "b.pricing", text, 1, 13)[:5] == [
        "month",
        "quarter",
        "year",
        "user",
        "connection",
    ]
    text = 'test "t" {\n  contract acme\n  expect \n}\n'
    assert labels(project, "b.pricing", text, 2, 9) == [
        "addon.hipaa",
        "base",
        "concurrency_overage",
        "discount.mau_overage",
        "mau_overage",
        "video",
        "voice",
        "total",
        "error",
    ]


def test_completion_of_keywords_valid_at_the_cursor(project: L.Project) -> None:
    text = 'contract b "B" extends starter {\n  \n}\n'
    got = labels(project, "b.pricing", text, 1, 2)
    assert got[:5] == ["mau", "concurrency", "voice", "video", "sms"]
    assert {"base", "discount", "when", "cap", "minimum", "addons"} <= set(got)
    assert "plan" not in got
    got = labels(project, "b.pricing", "", 0, 0)
    assert {"plan", "contract", "addon", "meter", "test", "currency"} <= set(got)
    assert "base" not in got
    text = 'contract b "B" extends starter {\n  mau included 5 \n}\n'
    got = labels(project, "b.pricing", text, 1, 17)
    assert "overage" in got and "graduated" in got and "base" not in got


# ----------------------------------------------------------- quick fixes


def fixes(project: L.Project, text: str) -> list[tuple[str, list[tuple[L.Range, str]]]]:
    p = path(project, "b.pricing")
    project.set_text(p, text)
    out = []
    for d in project.analysis().diagnostics[p]:
        for fix in L.quick_fixes(d, text):
            out.append((fix.title, [(e.range, e.text) for e in fix.edits]))
    return out


def test_did_you_mean_offers_its_fix(project: L.Project) -> None:
    text = 'contract b "B" extends starter {\n  addons hipa\n}\n'
    assert fixes(project, text) == [("Change to `hipaa`", [(L.Range(1, 9, 1, 13), "hipaa")])]
    text = 'contract b "B" extend starter {\n}\n'
    assert fixes(project, text) == [("Change to `extends`", [(L.Range(0, 15, 0, 21), "extends")])]


def test_curated_slips_offer_their_fixes(project: L.Project) -> None:
    text = 'contract b "B" extends starter {\n  mau included 1,000\n}\n'
    assert fixes(project, text) == [("Write `1_000`", [(L.Range(1, 15, 1, 20), "1_000")])]
    text = "contract b \u201cB\u201d extends starter {\n}\n"
    assert fixes(project, text) == [
        ("Use straight double quotes", [(L.Range(0, 11, 0, 12), '"'), (L.Range(0, 13, 0, 14), '"')])
    ]


# ------------------------------------------------------- lenses and format


def test_code_lenses_show_pass_and_fail(project: L.Project) -> None:
    lenses = L.code_lenses(project.analysis(), path(project, "tests.pricing"))
    assert [(x.range, x.title, x.passed) for x in lenses] == [
        (L.Range(0, 0, 0, 0), "✓ test passes", True),
        (
            L.Range(7, 0, 7, 0),
            "✗ test fails: line 12: base amount: expected 1.00, got 529.00",
            False,
        ),
    ]
    assert "base amount: expected 1.00, got 529.00" in lenses[1].details


def test_code_lenses_when_the_ruleset_has_errors(project: L.Project) -> None:
    project.set_text(path(project, "catalog.pricing"), CATALOG + "plan x {\n  base 5\n}\n")
    lenses = L.code_lenses(project.analysis(), path(project, "tests.pricing"))
    assert {x.title for x in lenses} == {"test not run: the ruleset has errors"}


def test_format_document_uses_the_formatter() -> None:
    assert L.format_document('plan  p   "P" {\n base 5.00 per month\n}', "x") == (
        'plan p "P" {\n  base 5.00 per month\n}\n'
    )
    assert L.format_document("plan p {", "x") is None


# --------------------------------------------------------- bad documents


def every_answer(text: str) -> None:
    """Ask every question at many positions; none may raise."""
    an = L.analyse_sources([("f.pricing", text)])
    lines = text.split("\n")
    for n, line in enumerate(lines[:40]):
        for char in sorted({0, len(line) // 2, len(line)}):
            L.hover(an, "f.pricing", n, char)
            L.definition(an, "f.pricing", n, char)
            L.references(an, "f.pricing", n, char)
            L.completions(an, "f.pricing", text, n, char)
    for ds in an.diagnostics.values():
        for d in ds:
            L.quick_fixes(d, text)
    L.code_lenses(an, "f.pricing")
    L.format_document(text, "f.pricing")


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (DATA / "invalid").glob("*.pricing")), ids=str
)
def test_the_invalid_corpus_never_breaks_an_answer(name: str) -> None:
    every_answer((DATA / "invalid" / name).read_text("utf-8"))


TOKENS = st.sampled_from(
    ["plan", "contract", "extends", "{", "}", "\n", " ", "base", "5", "per", "month", "mau",
     "included", "test", '"t"', "expect", "on", "discount", "10%", "when", ">", "1,000", "\u201c",
     "addons", "x", ",", "#", "cap", "usage", "period", "2026-08"]
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TOKENS, max_size=40).map("".join) | st.text(max_size=80))
def test_random_documents_never_break_an_answer(text: str) -> None:
    every_answer(text)


# ------------------------------------------------- end to end, over stdio


def test_pricing_lsp_over_stdio(tmp_path: Path, pricing_cmd: str) -> None:
    """The installed `pricing lsp`, driven by pygls's client as an editor drives it."""
    try:
        from lsprotocol import types as T
        from pygls.lsp.client import LanguageClient
        from pygls.uris import from_fs_path
    except ImportError:  # pragma: no cover - the test extra installs pygls
        pytest.skip("pygls is not installed (pip install 'pricing-dsl[lsp]')")
    (tmp_path / "catalog.pricing").write_text(CATALOG)
    (tmp_path / "tests.pricing").write_text(TESTS)
    acme = tmp_path / "contracts" / "acme.pricing"
    acme.parent.mkdir()
    acme.write_text(ACME)
    uri = from_fs_path(str(acme.resolve()))
    tests_uri = from_fs_path(str((tmp_path / "tests.pricing").resolve()))
    assert uri is not None and tests_uri is not None

    async def session() -> None:
        client = LanguageClient("test-client", "1")
        published: asyncio.Queue[T.PublishDiagnosticsParams] = asyncio.Queue()

        @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
            published.put_nowait(params)

        async def diagnostics_of(want: str) -> list[T.Diagnostic]:
            while True:
                params = await asyncio.wait_for(published.get(), 20)
                if params.uri == want:
                    return list(params.diagnostics)

        await client.start_io(pricing_cmd, "lsp")
        root = from_fs_path(str(tmp_path.resolve()))
        assert root is not None
        result = await client.initialize_async(
            T.InitializeParams(
                capabilities=T.ClientCapabilities(),
                root_uri=root,
                workspace_folders=[T.WorkspaceFolder(uri=root, name="ws")],
            )
        )
        assert result.capabilities.hover_provider
        client.initialized(T.InitializedParams())

        # Open with an error: a misspelt parent.
        bad = ACME.replace("extends starter", "extends startr")
        client.text_document_did_open(
            T.DidOpenTextDocumentParams(
                T.TextDocumentItem(uri=uri, language_id="pricing", version=1, text=bad)
            )
        )
        (d,) = await diagnostics_of(uri)
        assert d.code == "E201"
        assert d.severity == T.DiagnosticSeverity.Error
        assert d.range == T.Range(T.Position(0, 29), T.Position(0, 35))
        assert d.message == (
            "`acme` extends `startr`, which is not defined; did you mean `starter`?"
            "\nhint: extend one of: starter"
        )

        actions = await client.text_document_code_action_async(
            T.CodeActionParams(
                T.TextDocumentIdentifier(uri),
                d.range,
                T.CodeActionContext(diagnostics=[d]),
            )
        )
        assert actions is not None
        (action,) = actions
        assert isinstance(action, T.CodeAction)
        assert action.title == "Change to `starter`"
        assert action.edit is not None and action.edit.changes is not None
        assert list(action.edit.changes[uri]) == [T.TextEdit(d.range, "starter")]

        # Fix it by typing (a full-text change), badly laid out.
        client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(uri=uri, version=2),
                [T.TextDocumentContentChangeWholeDocument(text=ACME.replace("  base", "base"))],
            )
        )
        assert await diagnostics_of(uri) == []

        edits = await client.text_document_formatting_async(
            T.DocumentFormattingParams(
                T.TextDocumentIdentifier(uri), T.FormattingOptions(tab_size=2, insert_spaces=True)
            )
        )
        assert list(edits or ()) == [
            T.TextEdit(T.Range(T.Position(0, 0), T.Position(len(ACME.splitlines()), 0)), ACME)
        ]

        found = await client.text_document_definition_async(
            T.DefinitionParams(T.TextDocumentIdentifier(uri), T.Position(0, 31))
        )
        catalog_uri = from_fs_path(str((tmp_path / "catalog.pricing").resolve()))
        assert list(found or ()) == [  # type: ignore[arg-type]
            T.Location(catalog_uri or "", T.Range(T.Position(4, 5), T.Position(4, 12)))
        ]

        hovered = await client.text_document_hover_async(
            T.HoverParams(T.TextDocumentIdentifier(uri), T.Position(3, 20))
        )
        assert hovered is not None and isinstance(hovered.contents, T.MarkupContent)
        assert hovered.contents.value.splitlines()[0] == (
            "`mau_overage` = max(0, mau − 1000 included) × 0.12 per user"
        )
        assert hovered.range == T.Range(T.Position(3, 18), T.Position(3, 29))

        completed = await client.text_document_completion_async(
            T.CompletionParams(T.TextDocumentIdentifier(uri), T.Position(2, 9))
        )
        assert isinstance(completed, T.CompletionList)
        assert [i.label for i in completed.items] == ["hipaa"]

        lenses = await client.text_document_code_lens_async(
            T.CodeLensParams(T.TextDocumentIdentifier(tests_uri))
        )
        assert lenses is not None
        assert [(x.range.start.line, x.command.title if x.command else "") for x in lenses] == [
            (0, "✓ test passes"),
            (7, "✗ test fails: line 12: base amount: expected 1.00, got 529.00"),
        ]

        # A keystroke that makes a warning: it comes with the lint, after a longer pause.
        client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(uri=uri, version=3),
                [T.TextDocumentContentChangeWholeDocument(text=ACME.replace("529.00", "99.00"))],
            )
        )
        (w,) = await diagnostics_of(uri)
        assert (w.code, w.severity, w.range.start.line) == (
            "W101",
            T.DiagnosticSeverity.Warning,
            1,
        )

        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()

    asyncio.run(session())


# ------------------------------------------------- a keystroke's re-check


def test_a_keystroke_lints_only_the_declarations_it_changes(project: L.Project) -> None:
    project.analysis()
    acme = path(project, "contracts/acme.pricing")
    catalog = path(project, "catalog.pricing")
    project.set_text(acme, ACME.replace("529.00", "528.00"))
    project.analysis()
    assert project._lint.linted == 1  # acme alone
    project.set_text(catalog, CATALOG.replace("99.00", "98.00"))
    project.analysis()
    assert project._lint.linted == 2  # starter, and acme that extends it


def test_a_catalog_change_lints_every_declaration_again(project: L.Project) -> None:
    project.analysis()
    acme = path(project, "contracts/acme.pricing")
    # acme bills the add-on hipaa, now priced at zero in the catalog: W105.
    project.set_text(path(project, "catalog.pricing"), CATALOG.replace("500.00", "0.00"))
    assert [d.code for d in project.analysis().diagnostics[acme]] == ["W105"]


EDITED_LINES = st.sampled_from(
    ["  base 99.00 per month", "  base 529.00 per month", "  mau overage 0.12 per user",
     "  mau included 1000 overage 0.12 per user", "  discount 100% on mau_overage",
     "  when mau > 5 {", "  }", "",
     'addon hipaa "HIPAA" 400.00 per month', 'addon hipaa "HIPAA" 0.00 per month',
     "  addons hipaa", "  bse 5 per month",
     "  mau overage volume {\n    up to 10 at 0.20 per user\n    above at 0.10 per user\n  }"]
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_after_edits_the_findings_are_those_of_a_fresh_check(tmp_path_factory, data) -> None:  # type: ignore[no-untyped-def]
    """Kept parses and kept warnings never show what a check from scratch would not."""
    root = tmp_path_factory.mktemp("p").resolve()
    (root / "catalog.pricing").write_text(CATALOG)
    (root / "acme.pricing").write_text(ACME)
    project = L.Project(root)
    project.analysis()
    texts = {str(root / "catalog.pricing"): CATALOG, str(root / "acme.pricing"): ACME}
    for _ in range(data.draw(st.integers(1, 4))):
        name = data.draw(st.sampled_from(sorted(texts)))
        lines = texts[name].split("\n")
        at = data.draw(st.integers(0, len(lines) - 1))
        if data.draw(st.booleans()):
            lines[at] = data.draw(EDITED_LINES)
        else:
            lines.insert(at, data.draw(EDITED_LINES))
        texts[name] = "\n".join(lines)
        project.set_text(name, texts[name])
        assert (
            project.analysis().diagnostics == L.analyse_sources(sorted(texts.items())).diagnostics
        )


def test_warnings_of_changed_declarations_can_wait(tmp_path: Path) -> None:
    """First the errors and the kept warnings; the changed contract's warnings after."""
    (tmp_path / "a.pricing").write_text(CATALOG)
    (tmp_path / "b.pricing").write_text(ACME)
    project = L.Project(tmp_path.resolve())
    assert project.analysis().complete
    b = str(tmp_path.resolve() / "b.pricing")
    repeated = ACME.replace("529.00", "99.00")  # repeats the inherited base price: W101
    project.set_text(b, repeated)
    assert [d.code for d in project.analysis(lint=False).diagnostics[b]] == ["W101"]  # one: at once
    project._lint.quick = 0  # as when hundreds of contracts changed
    project.set_text(b, repeated.replace("addons hipaa", "addons  hipaa"))
    quick = project.analysis(lint=False)
    assert not quick.complete and quick.diagnostics[b] == ()
    full = project.analysis()
    assert full.complete and [d.code for d in full.diagnostics[b]] == ["W101"]
    assert project.analysis(lint=False) is full  # nothing changed since: the whole answer
    project.set_text(b, repeated.replace("base 99.00", "bse 99.00"))
    quick = project.analysis(lint=False)  # errors are never held back
    assert quick.complete and [d.code for d in quick.diagnostics[b]] == ["E208"]  # no meter `bse`
