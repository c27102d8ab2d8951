"""`eduedge rules`: the standards rules - what each measures, its threshold, where it applies, and the
clause of the document it comes from (with the city's overrides when given a configuration).

Exit status: 0, or 2 when a pack is broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.compliance import PackError, RuleSet, load_packs, pack_paths
from eduedge.agent.compliance.kinds import num
from eduedge.agent.config import school_type_word
from eduedge.core.i18n import N_, _, language, listing

EXIT_CONFIG = 2


def rules_json(rs: RuleSet, school_type: str | None) -> list[dict[str, Any]]:
    out = []
    effective = {r.id: r for r in rs.rules}     # with the city's overrides
    for pack in rs.packs:
        for rule in (effective[r.id] for r in pack.rules):
            d = rule.model_dump(mode="json", exclude_none=True, exclude={"city_override_of"})
            d["pack"] = pack.pack
            if rule.city_override_of is not None:
                d["pack_threshold"] = rule.city_override_of
            if school_type is not None:
                d["applies_to_school"] = rule.scope == "school" and rule.applies_to_type(school_type)
            out.append(d)
    return out


def render_rules(rs: RuleSet, school_type: str | None) -> str:
    lines: list[str] = []
    effective = {r.id: r for r in rs.rules}     # with the city's overrides
    for pack in rs.packs:
        chinese = language() == "zh"    # the source's own words, without the English gloss
        lines += [f"{pack.pack}  {pack.title.zh}" + (f"  [{pack.jurisdiction}]" if chinese else ""),
                  *([] if chinese else [f"{' ' * len(pack.pack)}  {pack.title.en}  [{pack.jurisdiction}]"])]
        if pack.evidence_note:
            lines.append("  " + _("note: {note}").format(note=" ".join(pack.evidence_note.split())))
        for rule in (effective[r.id] for r in pack.rules):
            mark = ""
            if school_type is not None:
                applies = rule.scope == "school" and rule.applies_to_type(school_type)
                mark = "  " + (_("(applies)") if applies else _("(cloud)") if rule.scope == "region"
                               else _("(not this school)"))
            lines.append(f"  {rule.id}{mark}")
            lines.append(f"      {rule.title.zh}" + ("" if chinese else f" — {rule.title.en}"))
            for item in [rule, *rule.parts]:
                prefix = "      " if item is rule else f"      .{item.id}: "
                if item.threshold is not None:
                    override = (" " + _("(city override; the pack says {n})").format(n=num(item.city_override_of))
                                if item.city_override_of is not None else "")
                    lines.append(f"{prefix}{item.measures} {item.op} {num(item.threshold)} {item.unit}{override}"
                                 f" [{item.kind}]")
                elif item.kind == "all-of":
                    lines.append(prefix + _("all of {n} parts").format(n=len(rule.parts)))
                if item.proposal:
                    lines.append(" " * len(prefix) + _("proposal: {text}").format(text=" ".join(item.proposal.split())))
            applies_to = (_("all schools") if rule.applies_to == "all"
                          else listing(school_type_word(t) for t in rule.applies_to))
            lines.append("      " + (_("applies to: {types}; by {deadline}") if rule.deadline else
                                     _("applies to: {types}")).format(types=applies_to, deadline=rule.deadline))
            src = rule.source
            lines.append("      " + _("source: {document}").format(
                document=f"{src.document.zh} {src.number or ''} {src.clause}".rstrip()))
            lines.append(f"        「{src.quote}」")
            if not chinese:
                lines.append(f"        {src.gloss}")
            if src.url:
                lines.append(f"        {src.url} " + (_("(seed source)") if src.evidence == "seed" else
                                                      _("(secondary source)")))
        lines.append("")
    return "\n".join(lines).rstrip()


def register(app: typer.Typer) -> None:
    @app.command("rules")
    def rules_cmd(pack: list[str] = typer.Option([], "--pack", help="only this pack (repeatable)"),
                  config: Path | None = config_option(N_("mark what applies to this school, with its overrides"),
                                                               None),
                  as_json: bool = typer.Option(False, "--json", help="print a JSON list of rules")) -> None:
        """List the standards rules: what each measures, its threshold, and its source."""
        cfg = config_or_exit(config, "error: ") if config is not None else None
        names = pack or (cfg.standards.packs if cfg is not None and cfg.standards.packs else
                         sorted(pack_paths(cfg.standards.pack_dirs if cfg else ())))
        try:
            rs = load_packs(names, cfg.standards.pack_dirs if cfg else (),
                            cfg.standards.overrides if cfg and not pack else None)
        except PackError as e:
            for line in e.problems:
                typer.echo(_("error: {problem}").format(problem=line), err=True)
            raise typer.Exit(EXIT_CONFIG) from None
        school_type = cfg.school.type if cfg is not None else None
        if as_json:
            typer.echo(json.dumps(rules_json(rs, school_type), ensure_ascii=False))
        else:
            typer.echo(render_rules(rs, school_type))
