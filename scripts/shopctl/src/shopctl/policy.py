"""`shopctl policy`: checkov's built-ins plus ShopFlow's pack, in one run, with reports.

Reports for security reviewers: SARIF 2.1.0, JUnit XML, JSON, Markdown and a
self-contained HTML page. Suppressions come only from policies/suppressions.yaml,
each with a reason, an owner and an expiry; an expired one fails the run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import html
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shopctl.argocd import all_applications
from shopctl.render import ENVIRONMENT_LABEL, Progress, render_environment, write_render

SEVERITIES = ["INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
SARIF_LEVEL = {
    "CRITICAL": "error",
    "HIGH": "error",
    "MEDIUM": "warning",
    "LOW": "note",
    "INFO": "note",
}


class PolicyError(RuntimeError):
    pass


@dataclass
class Finding:
    check_id: str
    check_name: str
    severity: str
    resource: str
    file: str
    start_line: int
    end_line: int
    guideline: str
    details: list[str] = field(default_factory=list)
    framework: str = ""
    suppressed_by: dict[str, str] | None = None


@dataclass
class Suppression:
    check: str
    resource: str
    reason: str
    owner: str
    expires: dt.date

    @property
    def expired(self) -> bool:
        return self.expires < dt.date.today()


@dataclass
class PolicyResult:
    target: str
    threshold: str
    findings: list[Finding]
    passed: int
    skipped_in_objects: list[Finding]
    suppressions: list[Suppression]
    seconds: float = 0.0
    #: Ids of the checks that ran and passed on something: proof that a check is enabled.
    passed_checks: list[str] = field(default_factory=list)

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed_by is None]

    @property
    def blocking(self) -> list[Finding]:
        floor = SEVERITIES.index(self.threshold)
        blocking = [f for f in self.active if SEVERITIES.index(f.severity) >= floor]
        return sorted(
            blocking, key=lambda f: (-SEVERITIES.index(f.severity), f.check_id, f.resource)
        )

    @property
    def expired(self) -> list[Suppression]:
        return [s for s in self.suppressions if s.expired]

    @property
    def ok(self) -> bool:
        return not self.blocking and not self.expired


# --- configuration ---------------------------------------------------------


def load_config(root: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((root / "policies" / "config.yaml").read_text())
    return config


def load_suppressions(path: Path) -> list[Suppression]:
    data = yaml.safe_load(path.read_text()) or {}
    result = []
    for i, entry in enumerate(data.get("suppressions") or []):
        missing = [
            k for k in ("check", "resource", "reason", "owner", "expires") if not entry.get(k)
        ]
        if missing:
            raise PolicyError(f"{path.name}: suppression {i + 1} lacks {', '.join(missing)}")
        expires = entry["expires"]
        if not isinstance(expires, dt.date):
            try:
                expires = dt.date.fromisoformat(str(expires))
            except ValueError:
                raise PolicyError(
                    f"{path.name}: suppression {i + 1}: expires must be YYYY-MM-DD"
                ) from None
        if entry["check"] == "*" or entry["resource"] == "*":
            raise PolicyError(
                f"{path.name}: suppression {i + 1} is a blanket suppression; name the check and resource"
            )
        result.append(
            Suppression(entry["check"], entry["resource"], entry["reason"], entry["owner"], expires)
        )
    return result


# --- staging what to scan ------------------------------------------------------


def stage_environment(
    root: Path, env: str, scan: Path, progress: Progress | None
) -> dict[str, str]:
    """Copy what Argo CD would apply for ``env`` and the repo's other scanned files into ``scan``.

    Returns a map from staged paths (relative to ``scan``) to repository paths.
    """
    if scan.exists():
        shutil.rmtree(scan)
    result = asyncio.run(render_environment(root, env, progress=progress))
    write_render(result, scan / "render")
    origins: dict[str, str] = {}
    for app in result.applications:
        origins[f"render/{app.name}.yaml"] = (
            f"charts/{Path(app.application['spec']['sources'][0]['path']).name}"
        )
    generated = [
        a
        for a in all_applications(root)
        if a["metadata"].get("labels", {}).get(ENVIRONMENT_LABEL) == env
    ]
    (scan / "applications").mkdir(parents=True)
    (scan / "applications" / f"{env}-applications.yaml").write_text(
        yaml.safe_dump_all(generated, sort_keys=False)
    )
    origins[f"applications/{env}-applications.yaml"] = "argocd/applicationsets"
    for path in sorted((root / "argocd").rglob("*.yaml")):
        target = scan / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        origins[str(path.relative_to(root))] = str(path.relative_to(root))
    for dockerfile in sorted((root / "apps").glob("*/Dockerfile")):
        target = scan / "docker" / dockerfile.parent.name / "Dockerfile"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dockerfile, target)
        origins[str(target.relative_to(scan))] = str(dockerfile.relative_to(root))
    for workflow in sorted((root / ".github" / "workflows").glob("*.y*ml")):
        target = scan / ".github" / "workflows" / workflow.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(workflow, target)
        origins[str(target.relative_to(scan))] = str(workflow.relative_to(root))
    return origins


# --- running checkov --------------------------------------------------------------


def run_checkov(root: Path, scan: Path, frameworks: list[str]) -> list[dict[str, Any]]:
    checkov = Path(sys.executable).parent / "checkov"
    env = {**os.environ, "SHOPFLOW_POLICY_SCAN_ROOT": str(scan)}
    args = [
        str(checkov),
        "-d",
        str(scan),
        "--framework",
        *frameworks,
        "--external-checks-dir",
        str(root / "policies" / "checkov"),
        "-o",
        "json",
        "--skip-download",
        "--compact",
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=900)  # noqa: S603
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise PolicyError(
            f"checkov failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
        ) from None
    reports = report if isinstance(report, list) else [report]
    return [r for r in reports if isinstance(r, dict) and "results" in r]


def _source_of(file_path: str, start: int, scan: Path) -> str | None:
    """The chart template a rendered object came from (Helm's `# Source:` comment)."""
    try:
        lines = (scan / file_path.lstrip("/")).read_text().splitlines()[: max(start, 1)]
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("# Source: "):
            chart, _, template = line[len("# Source: ") :].partition("/")
            return f"charts/{chart}/{template}"
    return None


def findings_from(
    reports: list[dict[str, Any]], scan: Path, origins: dict[str, str], default_severity: str
) -> tuple[list[Finding], list[Finding], int]:
    failed, skipped, passed = [], [], 0

    def build(c: dict[str, Any], framework: str) -> Finding:
        staged = str(c.get("file_path", "")).lstrip("/")
        start, end = (c.get("file_line_range") or [1, 1])[:2]
        location = origins.get(staged, staged)
        if staged.startswith("render/"):
            location = _source_of(staged, start, scan) or location
            start = end = 1 if location != staged else start
        resource = str(c.get("resource", ""))
        if resource.startswith(f"/{staged}") and staged in origins:
            resource = origins[staged] + resource[len(staged) + 1 :].rstrip(".")
        severity = str(c.get("severity") or default_severity).upper()
        severity = severity if severity in SEVERITIES else default_severity
        return Finding(
            check_id=c["check_id"],
            check_name=c.get("check_name", ""),
            severity=severity,
            resource=resource,
            file=location,
            start_line=max(int(start), 1),
            end_line=max(int(end), int(start), 1),
            guideline=c.get("guideline") or "",
            details=[str(d) for d in c.get("details") or []],
            framework=framework,
        )

    for report in reports:
        framework = str(report.get("check_type", ""))
        passed += len(report["results"].get("passed_checks", []))
        failed += [build(c, framework) for c in report["results"].get("failed_checks", [])]
        for c in report["results"].get("skipped_checks", []):
            finding = build(c, framework)
            finding.suppressed_by = {
                "reason": (c.get("check_result") or {}).get("suppress_comment", ""),
                "source": "annotation on the object",
            }
            skipped.append(finding)
    return failed, skipped, passed


def apply_suppressions(findings: list[Finding], suppressions: list[Suppression]) -> None:
    for finding in findings:
        for s in suppressions:
            if (
                s.check == finding.check_id
                and fnmatch.fnmatchcase(finding.resource, s.resource)
                and not s.expired
            ):
                finding.suppressed_by = {
                    "reason": s.reason,
                    "owner": s.owner,
                    "expires": s.expires.isoformat(),
                    "source": "policies/suppressions.yaml",
                }
                break


def run(
    root: Path,
    *,
    env: str | None = None,
    manifests: Path | None = None,
    out: Path,
    progress: Progress | None = None,
    suppressions_file: Path | None = None,
) -> PolicyResult:
    started = time.monotonic()
    config = load_config(root)
    suppressions = load_suppressions(suppressions_file or root / "policies" / "suppressions.yaml")
    out.mkdir(parents=True, exist_ok=True)
    if env is not None:
        scan = out / "scan"
        origins = stage_environment(root, env, scan, progress)
        target, threshold = env, config["thresholds"].get(env, "LOW")
    else:
        assert manifests is not None
        if not manifests.is_dir():
            raise PolicyError(f"{manifests} is not a folder")
        scan = manifests.resolve()
        base = scan.relative_to(root) if scan.is_relative_to(root) else scan
        origins = {
            str(p.relative_to(scan)): str(base / p.relative_to(scan))
            for p in scan.rglob("*")
            if p.is_file()
        }
        target, threshold = str(manifests), config["thresholds"]["manifests"]
    if progress:
        progress("running checkov (built-in checks and the ShopFlow pack) in one pass")
    reports = run_checkov(root, scan, list(config["frameworks"]))
    failed, skipped, passed = findings_from(
        reports, scan, origins, config["defaultBuiltinSeverity"]
    )
    apply_suppressions(failed, suppressions)
    result = PolicyResult(
        target, threshold, failed, passed, skipped, suppressions, time.monotonic() - started
    )
    result.passed_checks = sorted(
        {c["check_id"] for r in reports for c in r["results"].get("passed_checks", [])}
    )
    if env is not None:
        ran = set(result.passed_checks) | {f.check_id for f in failed + skipped}
        missing = sorted(set(config.get("requiredChecks") or []) - ran)
        if missing:
            raise PolicyError(
                f"checks that must run on {env} did not run: {', '.join(missing)} "
                "(policies/config.yaml, requiredChecks)"
            )
    write_reports(result, out, root)
    return result


# --- reports -------------------------------------------------------------------------


def _counts(findings: list[Finding]) -> dict[str, int]:
    return {s: sum(1 for f in findings if f.severity == s) for s in reversed(SEVERITIES)}


def write_reports(result: PolicyResult, out: Path, root: Path) -> None:
    (out / "results.json").write_text(json.dumps(to_json(result), indent=2))
    (out / "results.sarif").write_text(json.dumps(to_sarif(result), indent=2))
    ET.ElementTree(to_junit(result)).write(
        out / "results.xml", encoding="utf-8", xml_declaration=True
    )
    (out / "summary.md").write_text(to_markdown(result))
    (out / "report.html").write_text(to_html(result))


def to_json(result: PolicyResult) -> dict[str, Any]:
    return {
        "target": result.target,
        "threshold": result.threshold,
        "passed": result.passed,
        "passed_checks": result.passed_checks,
        "ok": result.ok,
        "counts": _counts(result.active),
        "findings": [asdict(f) for f in result.findings],
        "skipped_in_objects": [asdict(f) for f in result.skipped_in_objects],
        "suppressions": [
            dict(asdict(s), expires=s.expires.isoformat(), expired=s.expired)
            for s in result.suppressions
        ],
    }


def to_sarif(result: PolicyResult) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in result.findings:
        rules.setdefault(
            f.check_id,
            {
                "id": f.check_id,
                "name": f.check_id,
                "shortDescription": {"text": f.check_name or f.check_id},
                "fullDescription": {"text": f.check_name or f.check_id},
                "help": {"text": f.guideline or f.check_name or f.check_id},
                "defaultConfiguration": {"level": SARIF_LEVEL[f.severity]},
                "properties": {
                    "security-severity": {
                        "CRITICAL": "9.5",
                        "HIGH": "8.0",
                        "MEDIUM": "5.5",
                        "LOW": "3.0",
                        "INFO": "1.0",
                    }[f.severity],
                    "tags": ["security", f.framework or "kubernetes"],
                },
            },
        )
        entry: dict[str, Any] = {
            "ruleId": f.check_id,
            "level": SARIF_LEVEL[f.severity],
            "message": {
                "text": f"{f.resource}: {f.check_name}"
                + (f" ({'; '.join(f.details)})" if f.details else "")
            },
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": f.start_line, "endLine": f.end_line},
                    }
                }
            ],
            "partialFingerprints": {"resource": f"{f.check_id}:{f.resource}"},
        }
        if f.suppressed_by:
            entry["suppressions"] = [
                {"kind": "external", "justification": f.suppressed_by.get("reason", "")}
            ]
        results.append(entry)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "shopctl policy (checkov + ShopFlow pack)",
                        "informationUri": "https://www.checkov.io",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }


def to_junit(result: PolicyResult) -> ET.Element:
    suites = ET.Element("testsuites", name=f"shopctl policy {result.target}")
    by_check: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_check.setdefault(f.check_id, []).append(f)
    for check_id, findings in sorted(by_check.items()):
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=check_id,
            tests=str(len(findings)),
            failures=str(sum(1 for f in findings if f.suppressed_by is None)),
            skipped=str(sum(1 for f in findings if f.suppressed_by)),
        )
        for f in findings:
            case = ET.SubElement(
                suite, "testcase", classname=check_id, name=f.resource, file=f.file
            )
            if f.suppressed_by:
                ET.SubElement(case, "skipped", message=f.suppressed_by.get("reason", ""))
            else:
                failure = ET.SubElement(
                    case, "failure", message=f"{f.severity}: {f.check_name}", type=f.severity
                )
                failure.text = "\n".join(
                    [f"{f.file}:{f.start_line}", *f.details, f"Fix: {f.guideline}"]
                )
    ET.SubElement(suites, "properties")
    return suites


def to_markdown(result: PolicyResult) -> str:
    counts = _counts(result.active)
    verdict = "PASS" if result.ok else "FAIL"
    out = [
        f"# Policy report: {result.target}",
        "",
        f"**{verdict}** (threshold {result.threshold}; {result.passed} checks passed, "
        f"{len(result.active)} findings, {sum(1 for f in result.findings if f.suppressed_by)} suppressed)",
        "",
        "| Severity | Findings |",
        "|---|---|",
    ]
    out += [f"| {s} | {n} |" for s, n in counts.items()]
    out += ["", "## Findings by resource", ""]
    if result.active:
        out += ["| Severity | Check | Resource | Where | Fix |", "|---|---|---|---|---|"]
        for f in sorted(
            result.active, key=lambda f: (-SEVERITIES.index(f.severity), f.resource, f.check_id)
        ):
            detail = f" ({'; '.join(f.details)})" if f.details else ""
            out.append(
                f"| {f.severity} | {f.check_id} {f.check_name}{detail} | `{f.resource}` | "
                f"{f.file}:{f.start_line} | {f.guideline or '-'} |"
            )
    else:
        out.append("No findings.")
    out += ["", "## Suppressions (policies/suppressions.yaml)", ""]
    if result.suppressions:
        out += ["| Check | Resource | Reason | Owner | Expires |", "|---|---|---|---|---|"]
        out += [
            f"| {s.check} | `{s.resource}` | {s.reason} | {s.owner} | {s.expires.isoformat()}"
            f"{' **EXPIRED**' if s.expired else ''} |"
            for s in result.suppressions
        ]
    else:
        out.append("None.")
    out += ["", "## Skips annotated on objects", ""]
    skips = sorted(
        {
            (f.check_id, f.suppressed_by["reason"])
            for f in result.skipped_in_objects
            if f.suppressed_by
        }
    )
    out += [f"- {c}: {r}" for c, r in skips] or ["None."]
    return "\n".join(out) + "\n"


def to_html(result: PolicyResult) -> str:
    rows = []
    for f in sorted(result.findings, key=lambda f: -SEVERITIES.index(f.severity)):
        status = "suppressed" if f.suppressed_by else "open"
        rows.append(
            f'<tr data-sev="{SEVERITIES.index(f.severity)}" class="{status}"><td>{f.severity}</td>'
            f"<td>{html.escape(f.check_id)}</td><td>{html.escape(f.check_name)}</td>"
            f"<td><code>{html.escape(f.resource)}</code></td><td>{html.escape(f.file)}:{f.start_line}</td>"
            f"<td>{html.escape('; '.join(f.details))}</td><td>{html.escape(f.guideline)}</td><td>{status}</td></tr>"
        )
    counts = " ".join(f"<span class=b>{s}: {n}</span>" for s, n in _counts(result.active).items())
    verdict = "PASS" if result.ok else "FAIL"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Policy report: {html.escape(result.target)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse;width:100%;font-size:.9rem}}
th,td{{border:1px solid #ccc;padding:.35rem .5rem;text-align:left;vertical-align:top}}
th{{background:#f2f2f2;cursor:pointer}} tr.suppressed{{color:#888}}
.b{{display:inline-block;margin-right:1rem;padding:.2rem .5rem;background:#eee;border-radius:.3rem}}
.PASS{{color:#176317}} .FAIL{{color:#a11}}
</style></head><body>
<h1>Policy report: {html.escape(result.target)}</h1>
<p class="{verdict}"><strong>{verdict}</strong> at threshold {result.threshold}; {result.passed} checks passed.</p>
<p>{counts}</p>
<table id="findings"><thead><tr><th data-k="sev">Severity ▾</th><th>Check</th><th>Name</th><th>Resource</th>
<th>Where</th><th>Details</th><th>How to fix</th><th>Status</th></tr></thead>
<tbody>{"".join(rows) or "<tr><td colspan=8>No findings.</td></tr>"}</tbody></table>
<script>
// Sort by severity (click again to reverse); no network, no libraries.
const th=document.querySelector('th[data-k=sev]');let desc=true;
th.addEventListener('click',()=>{{const tb=document.querySelector('#findings tbody');
const rows=[...tb.querySelectorAll('tr[data-sev]')];desc=!desc;
rows.sort((a,b)=>(desc?-1:1)*(a.dataset.sev-b.dataset.sev));rows.forEach(r=>tb.appendChild(r));
th.textContent='Severity '+(desc?'▾':'▴');}});
</script></body></html>
"""


def summary_lines(result: PolicyResult, out: Path) -> list[str]:
    lines = [
        f"policy {result.target}: {result.passed} passed, {len(result.active)} findings "
        f"({', '.join(f'{n} {s}' for s, n in _counts(result.active).items() if n) or 'none'}), "
        f"{sum(1 for f in result.findings if f.suppressed_by)} suppressed, threshold {result.threshold}"
    ]
    for f in result.blocking[:15]:
        lines.append(f"  {f.severity:8} {f.check_id:16} {f.resource}  ({f.file}:{f.start_line})")
    if len(result.blocking) > 15:
        lines.append(f"  ... and {len(result.blocking) - 15} more in {out / 'summary.md'}")
    for s in result.expired:
        lines.append(
            f"  EXPIRED suppression {s.check} {s.resource} (owner {s.owner}, expired {s.expires})"
        )
    lines.append(
        f"reports: {out}/results.sarif results.xml results.json summary.md report.html "
        f"({result.seconds:.1f}s)"
    )
    return lines
