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
from eduedge.core.i18n import N_

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
        lines += [f"{pack.pack}  {pack.title.zh}", f"{' ' * len(pack.pack)}  {pack.title.en}  [{pack.jurisdiction}]"]
        if pack.evidence_note:
            lines.append(f"  note: {' '.join(pack.evidence_note.split())}")
        for rule in (effective[r.id] for r in pack.rules):
            mark = ""
            if school_type is not None:
                applies = rule.scope == "school" and rule.applies_to_type(school_type)
                mark = "  (applies)" if applies else "  (cloud)" if rule.scope == "region" else "  (not this school)"
            lines.append(f"  {rule.id}{mark}")
            lines.append(f"      {rule.title.zh} — {rule.title.en}")
            for item in [rule, *rule.parts]:
                prefix = "      " if item is rule else f"      .{item.id}: "
                if item.threshold is not None:
                    override = (f" (city override; the pack says {num(item.city_override_of)})"
                                if item.city_override_of is not None else "")
                    lines.append(f"{prefix}{item.measures} {item.op} {num(item.threshold)} {item.unit}{override}"
                                 f" [{item.kind}]")
                elif item.kind == "all-of":
                    lines.append(f"{prefix}all of {len(rule.parts)} parts")
                if item.proposal:
                    lines.append(f"{' ' * len(prefix)}proposal: {' '.join(item.proposal.split())}")
            applies_to = "all schools" if rule.applies_to == "all" else ", ".join(rule.applies_to)
            lines.append(f"      applies to: {applies_to}" + (f"; by {rule.deadline}" if rule.deadline else ""))
            src = rule.source
            lines.append(f"      source: {src.document.zh} {src.number or ''} {src.clause}".rstrip())
            lines.append(f"        「{src.quote}」")
            lines.append(f"        {src.gloss}")
            if src.url:
                lines.append(f"        {src.url} ({src.evidence} source)")
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
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(EXIT_CONFIG) from None
        school_type = cfg.school.type if cfg is not None else None
        if as_json:
            typer.echo(json.dumps(rules_json(rs, school_type), ensure_ascii=False))
        else:
            typer.echo(render_rules(rs, school_type))
