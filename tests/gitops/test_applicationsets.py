"""ApplicationSet expansion, faithful to Argo CD or refusing."""

from __future__ import annotations

import copy

import pytest
import yaml
from shopctl import gotemplate
from shopctl.argocd import ApplicationSetError, all_applications, application_sets, expand
from shopctl.render import EnvironmentRender

from tests.utils.gitops import ENVS, ROOT

SERVICES = {
    "user-auth": "auth-service",
    "catalog-api": "catalog-api",
    "order-mgmt": "order-mgmt",
    "payment-api": "payment-api",
    "notify-hub": "notify-hub",
}


@pytest.fixture(scope="module")
def apps() -> dict[str, dict]:
    return {a["metadata"]["name"]: a for a in all_applications(ROOT)}


def test_one_application_per_service_per_environment(apps: dict[str, dict]) -> None:
    expected = {f"{env}-{svc}" for env in ENVS for svc in [*SERVICES, "platform", "mesh"]}
    expected |= {
        f"{c}-istio-{p}"
        for c in ("shopflow-nonprod", "shopflow-prod")
        for p in ("base", "cni", "istiod", "gateway")
    }
    assert set(apps) == expected


@pytest.mark.parametrize("env", ENVS)
def test_service_applications_match_argo_semantics(apps: dict[str, dict], env: str) -> None:
    env_file = yaml.safe_load((ROOT / "environments" / env / "env.yaml").read_text())
    for service, chart in SERVICES.items():
        app = apps[f"{env}-{service}"]
        spec = app["spec"]
        assert spec["project"] == f"shopflow-{env}" != "default"
        assert spec["destination"] == {
            "name": env_file["cluster"]["name"],
            "namespace": f"shopflow-{env}",
        }
        chart_source, values_source = spec["sources"]
        assert chart_source["path"] == f"charts/{chart}" and values_source["ref"] == "values"
        helm = chart_source["helm"]
        assert helm["releaseName"] == service
        assert helm["valueFiles"] == [
            f"$values/environments/_variants/{env_file['tier']}/values.yaml",
            f"$values/environments/{env}/values.yaml",
            f"$values/environments/{env}/{chart}/values.yaml",
            f"$values/environments/{env}/{chart}/version.yaml",
        ]
        assert helm["kubeVersion"] == env_file["kubeVersion"]
        assert helm["apiVersions"] == env_file["apiVersions"]
        policy = spec["syncPolicy"]
        assert policy["automated"] == {"prune": True, "selfHeal": True}
        assert policy["retry"]["limit"] > 0 and policy["retry"]["backoff"]
        assert {"ServerSideApply=true", "PruneLast=true"} <= set(policy["syncOptions"])
        assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "0"
    assert (
        apps[f"{env}-platform"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-2"
    )
    assert apps[f"{env}-mesh"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"


def test_istio_is_pinned_to_1_27(apps: dict[str, dict]) -> None:
    istio = {name: app for name, app in apps.items() if "-istio-" in name}
    # base, the CNI node agent, istiod and the gateway on each of the two clusters.
    assert len(istio) == 8, sorted(istio)
    for app in istio.values():
        source = app["spec"]["source"]
        assert source["repoURL"] == "https://istio-release.storage.googleapis.com/charts"
        assert source["targetRevision"].startswith("1.27.")
        assert app["spec"]["destination"]["namespace"] == "istio-system"


def test_sidecars_need_no_privilege_so_restricted_namespaces_admit_them(
    apps: dict[str, dict], rendered: dict[str, EnvironmentRender]
) -> None:
    # Every shopflow namespace injects sidecars and enforces Pod Security `restricted`, which
    # refuses the NET_ADMIN/NET_RAW istio-init container. So each cluster runs the CNI node
    # agent, and istiod relies on it instead of injecting istio-init.
    for env, result in rendered.items():
        (namespace,) = (
            d for a in result.applications for d in a.documents if d["kind"] == "Namespace"
        )
        labels = namespace["metadata"]["labels"]
        assert labels["istio-injection"] == "enabled", env
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", env
    for cluster in ("shopflow-nonprod", "shopflow-prod"):
        cni = apps[f"{cluster}-istio-cni"]["spec"]
        assert cni["source"]["chart"] == "cni"
        assert cni["destination"] == {"name": cluster, "namespace": "istio-system"}
        istiod = apps[f"{cluster}-istio-istiod"]["spec"]["source"]["helm"]
        assert yaml.safe_load(istiod["values"])["pilot"]["cni"]["enabled"] is True
        wave = {
            part: int(
                apps[f"{cluster}-istio-{part}"]["metadata"]["annotations"][
                    "argocd.argoproj.io/sync-wave"
                ]
            )
            for part in ("base", "cni", "istiod")
        }
        assert wave["base"] < wave["cni"] <= wave["istiod"]


def services_appset() -> dict:
    return copy.deepcopy(
        next(a for p, a in application_sets(ROOT) if a["metadata"]["name"] == "shopflow-services")
    )


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (
            lambda s: s["spec"]["generators"][0]["matrix"]["generators"].__setitem__(
                1, {"clusters": {}}
            ),
            "the clusters generator is not implemented",
        ),
        (
            lambda s: s["spec"]["generators"][0]["matrix"]["generators"][0]["git"].__setitem__(
                "directories", []
            ),
            "git.directories is not implemented",
        ),
        (
            lambda s: s["spec"].__setitem__("syncPolicy", {"preserveResourcesOnDeletion": True}),
            "spec.syncPolicy is not implemented",
        ),
        (lambda s: s["spec"].__setitem__("goTemplate", False), "goTemplate must be true"),
        (
            lambda s: s["spec"]["template"]["metadata"].__setitem__("name", "{{.nosuchkey}}"),
            'map has no entry for key "nosuchkey"',
        ),
        (
            lambda s: s["spec"]["template"]["metadata"].__setitem__("name", "{{ .name | upper }}"),
            "unsupported template action",
        ),
    ],
)
def test_unimplemented_features_are_refused_by_name(mutate, named: str) -> None:  # type: ignore[no-untyped-def]
    appset = services_appset()
    mutate(appset)
    with pytest.raises(ApplicationSetError, match=named.replace("(", r"\(").replace(".", r"\.")):
        expand(ROOT, appset)


def test_gotemplate_subset() -> None:
    data = {"a": {"b": "x"}, "items": ["p", "q"], "flag": True}
    assert gotemplate.render("{{.a.b}}-{{ .flag }}", data) == "x-true"
    assert (
        gotemplate.render("l:\n{{- range .items }}\n  - {{.}}\n{{- end }}\n", data)
        == "l:\n  - p\n  - q\n"
    )
    with pytest.raises(gotemplate.TemplateError, match="range"):
        gotemplate.render("{{range .items}}", data)
    with pytest.raises(gotemplate.TemplateError, match="'if' is not implemented"):
        gotemplate.render("{{if .flag}}x{{end}}", data)
