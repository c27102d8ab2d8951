"""The technician's language (eduedge/core/i18n.py): the Chinese catalogue is complete, current and what
ships, and the language is the one `--lang`, `ui.lang` or the locale asks for."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import typer
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from typer.testing import CliRunner

from eduedge.cli import build
from eduedge.core import i18n

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "eduedge"
POT = PACKAGE / "locale" / "eduedge.pot"
PO = PACKAGE / "locale" / "zh_CN" / "LC_MESSAGES" / "eduedge.po"
MO = PO.with_suffix(".mo")
FIX = "run `make messages`, then translate what is empty or fuzzy in " + str(PO.relative_to(REPO))
# The cells of a brace-format placeholder: {name}, {name!r}, {name:.1f}; `{{` is a literal brace.
PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")


def _ids(msgid: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(msgid) if isinstance(msgid, tuple | list) else (msgid,)


def _po():
    with PO.open("rb") as f:
        return read_po(f)


def test_every_message_has_its_chinese():
    catalog = _po()
    missing = [m.id for m in catalog if m.id and (m.fuzzy or not any(_ids(m.string)))]
    assert not missing, f"{len(missing)} messages without a Chinese translation ({FIX}):\n" + "\n".join(
        map(repr, missing))


def test_the_catalogue_holds_exactly_the_messages_of_the_sources():
    # what Babel reads from the sources now, as `make messages` does
    with (REPO / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    now = {msgid for _file, _line, msgid, _comments, _context
           in extract_from_dir(str(PACKAGE), method_map, options_map)}
    with POT.open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    po = {m.id for m in _po() if m.id}
    assert now == template, (f"{POT.relative_to(REPO)} is stale ({FIX}): new {sorted(map(str, now - template))}, "
                             f"gone {sorted(map(str, template - now))}")
    assert po == template, f"the .po and the .pot differ ({FIX}): {sorted(map(str, po ^ template))}"


def test_every_translation_keeps_the_placeholders_of_its_english():
    wrong = []
    for m in _po():
        if not m.id:
            continue
        want = set(PLACEHOLDER.findall(" ".join(_ids(m.id))))
        for s in _ids(m.string):
            if set(PLACEHOLDER.findall(s)) != want:
                wrong.append(f"{m.id!r}: {s!r}")
    assert not wrong, "translations whose {placeholders} differ from the English:\n" + "\n".join(wrong)


def test_the_shipped_mo_is_the_compiled_po():
    with MO.open("rb") as f:
        compiled = {_ids(m.id): _ids(m.string) for m in read_mo(f) if m.id}
    wanted = {_ids(m.id): _ids(m.string) for m in _po() if m.id and not m.fuzzy}
    assert compiled == wanted, f"{MO.relative_to(REPO)} is not the compiled .po: run `make messages`"


def test_no_message_hides_inside_an_f_string():
    """Babel (on Python 3.11) reads an f-string as one token: a `_()` inside it is never extracted."""
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
            if tok.type == tokenize.STRING and re.match(r"(?i)[rb]*f", tok.string) and re.search(
                    r"(?<![.\w])(_|N_|ngettext)\(", tok.string):     # not `f._(...)`: the city's keyed texts
                hidden.append(f"{path.relative_to(REPO)}:{tok.start[0]}: {tok.string[:80]}")
    assert not hidden, "move these calls out of the f-string, so that Babel sees them:\n" + "\n".join(hidden)


# -- which language --------------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "configured", "env", "want"), [
    (None, None, {}, "en"),
    (None, None, {"LANG": "zh_CN.UTF-8"}, "zh"),
    (None, None, {"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh"),
    (None, None, {"LANG": "zh_CN.UTF-8", "LC_ALL": "C.UTF-8"}, "en"),     # LC_ALL decides, and it is not Chinese
    (None, None, {"LC_ALL": "zh_SG.utf8"}, "zh"),
    (None, "zh", {"LANG": "en_US.UTF-8"}, "zh"),                          # the site's choice beats the locale
    ("en", "zh", {"LANG": "zh_CN.UTF-8"}, "en"),                          # the command line beats both
    ("zh-CN", None, {}, "zh"),
])
def test_the_language_is_the_command_lines_then_the_configurations_then_the_locales(flag, configured, env, want):
    assert i18n.resolve(flag, configured, env) == want


def test_a_language_eduedge_does_not_speak_is_refused():
    with pytest.raises(ValueError, match="'fr' is not a language eduedge speaks"):
        i18n.resolve("fr")


def test_chinese_characters_take_two_columns():
    assert i18n.cells("未达标") == 6 and i18n.ljust("达标", 6) == "达标  " and i18n.ljust("FAIL", 6) == "FAIL  "


CONFIG = """\
school: {{id: lang-school, name: 语言测试小学, city: yinchuan, type: primary}}
agent: {{data_dir: {data}}}
{ui}"""


def _cached(tmp_path: Path, *args: str, ui: str = "", env: dict[str, str] | None = None):
    """`eduedge ... diag --cached` on a configuration with nothing stored: a message, exit 3."""
    (tmp_path / "data").mkdir(exist_ok=True)
    cfg = tmp_path / "eduedge.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data", ui=ui), encoding="utf-8")
    env = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8", **(env or {})}
    try:
        return CliRunner().invoke(build(), [*args, "diag", "--cached", "--config", str(cfg)], env=env)
    finally:
        i18n.start()      # the next test speaks the test run's language again


ENGLISH, CHINESE = "no stored results in", "中没有保存的结果"


@pytest.mark.parametrize(("args", "ui", "env", "want"), [
    ((), "", {}, ENGLISH),
    ((), "", {"LANG": "zh_CN.UTF-8"}, CHINESE),
    (("--lang", "zh"), "", {}, CHINESE),
    ((), "ui: {lang: zh}", {}, CHINESE),
    (("--lang", "en"), "ui: {lang: zh}", {"LANG": "zh_CN.UTF-8"}, ENGLISH),
    ((), "ui: {lang: en}", {"LANG": "zh_CN.UTF-8"}, ENGLISH),
])
def test_a_command_speaks_the_language_asked_for(tmp_path, args, ui, env, want):
    r = _cached(tmp_path, *args, ui=ui, env=env)
    assert r.exit_code == 3, r.output
    assert want in r.output, r.output


def test_a_bad_lang_is_a_one_line_error(tmp_path):
    r = _cached(tmp_path, "--lang", "fr")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "'fr' is not a language eduedge speaks (zh or en)" in r.output


def _command_paths(command, path=()):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _command_paths(sub, (*path, name))


def _phrases(texts) -> list[str]:
    """The English phrases of `texts`: the parts between placeholders with two words in a row."""
    parts = {p.strip(" ,;:.()—-") for t in texts for p in re.split(r"\{[^}]*\}", t)}
    return sorted(p for p in parts if re.search(r"[a-z]{2,} [a-z]{2,}", p))


def test_every_commands_help_is_in_chinese():
    """`--lang zh ... --help` on every command: the help of the command and of every option is the catalogue's
    Chinese, and typer's panel titles too; nothing of the English help is left."""
    with (REPO / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    helps = {msgid for _f, _l, msgid, _c, _x in extract_from_dir(str(PACKAGE), method_map, options_map)
             if isinstance(msgid, str)}
    english = [p for p in _phrases(helps) if not p.startswith("eduedge ")]    # `Usage: eduedge diag` stays
    app = build()
    runner = CliRunner()
    try:
        for path in _command_paths(typer.main.get_command(app)):
            r = runner.invoke(app, ["--lang", "zh", *path, "--help"], env={"COLUMNS": "250", "LANG": "C.UTF-8"})
            assert r.exit_code == 0, (path, r.output)
            assert "选项" in r.output and "显示本帮助并退出" in r.output, (path, r.output)
            left = [p for p in english if p in r.output]
            assert not left, f"eduedge {' '.join(path)} --help: English left: {left}\n{r.output}"
        english_help = runner.invoke(app, ["--lang", "en", "diag", "--help"], env={"COLUMNS": "250"}).output
        assert "Options" in english_help and "Check the school against its standards" in english_help
    finally:
        i18n.start()


def test_a_configurations_mistakes_are_said_in_chinese(tmp_path):
    """`config check` under --lang zh: our own words and pydantic's commonest errors, each with file and line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("school: {id: X, name: X, city: yinchuan, type: primary, enrolment: {students: -1}}\n"
                   "snmp: {defaults: {timeout: soon}}\nfoo: 1\n", encoding="utf-8")
    try:
        r = CliRunner().invoke(build(), ["--lang", "zh", "config", "check", str(bad)])
        english = CliRunner().invoke(build(), ["config", "check", str(bad)], env={"LANG": "C.UTF-8"})
    finally:
        i18n.start()
    assert r.exit_code == 2, r.output
    for line in (f"{bad}:1: school.id: 不符合格式", f"{bad}:1: school.enrolment.students: 不得小于 0",
                 f"{bad}:1: school.enrolment.teachers: 缺少必填字段",
                 f"{bad}:2: snmp.defaults.timeout: 'soon' 不是时长", f"{bad}:3: foo: 未知字段"):
        assert line in r.output, r.output
    assert "Input should" not in r.output and "Value error" not in r.output
    assert "Input should be greater than or equal to 0" in english.output     # English keeps pydantic's words


def test_a_wrong_command_line_is_one_line_in_chinese():
    """click says what is wrong in English only: eduedge.cli.main says the commonest mistakes in Chinese too."""
    eduedge = str(Path(sys.executable).with_name("eduedge"))
    env = {**os.environ, "LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_CN.UTF-8"}
    for args, said in ((["wifi", "--devic", "x"], "eduedge wifi：没有选项 --devic（相近的：--device）"),
                       (["poll", "a", "b"], "eduedge poll：多余的参数：b"),
                       (["poll"], "eduedge poll：缺少")):
        r = subprocess.run([eduedge, *args], capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_demos_closing_summary_is_in_the_users_language(tmp_path):
    """`make demo` under LANG=zh_CN: the agent judges in Chinese (it is started with the demo's --lang) and the
    summary wraps its findings in Chinese, the status column aligned by terminal columns."""
    from eduedge.agent.compliance import assess
    from eduedge.agent.samplestore import SampleStore
    from eduedge.simulator.demo import Heard, _summary
    from tests.test_diag_html import NOW, config, school_month

    cfg_file = tmp_path / "agent.yaml"
    cfg_file.write_text("school: {id: s, name: 诊断测试小学, city: yinchuan, type: primary}\n", encoding="utf-8")
    lines: list[str] = []
    with i18n.using("zh"):
        cfg = config()
        store = SampleStore(":memory:")
        school_month(store, cfg)
        heard = Heard()
        for f in assess(store, cfg, NOW, source="daemon").findings:
            heard.findings[f.rule] = f.to_dict()
        _summary(heard, cfg_file, ["yinchuan-2018.backbone", "yinchuan-2018.uplink", "ningxia-2019.egress",
                                   "yinchuan-2018.wifi-access"],
                 "图书馆的交换机 sw-lib 断电", 42.0, lines.append, keep=False)
    text = "\n".join(lines)
    assert "市级平台现在掌握的 诊断测试小学（小学）情况：" in text, text
    backbone = next(x for x in lines if " yinchuan-2018.backbone " in x)
    assert backbone.split()[0] == "未达标" and "骨干链路" in backbone, text
    assert any("检查网线" in x for x in lines), text                      # the failing rule's cause and hint
    # the rule ids line up although the labels (未达标, 无法判定) are Chinese, two columns a character
    starts = {i18n.cells(x[:x.index(rule)]) for x in lines for rule in ("yinchuan-2018.backbone ",
              "yinchuan-2018.uplink ", "ningxia-2019.egress ", "yinchuan-2018.wifi-access ")
              if x.startswith("    ") and rule in x}
    assert len(starts) == 1, text
    assert "4 条种子规则中已评判 3 条" in text, text
