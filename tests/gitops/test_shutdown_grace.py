"""The services' shutdown grace fits inside what the charts give a terminating pod.

Kubernetes sends SIGTERM after the preStop sleep and SIGKILL at
``terminationGracePeriodSeconds``. A service that drains for its whole grace
period must therefore finish within ``terminationGracePeriodSeconds`` minus
the preStop sleep, in every environment Argo CD renders.
"""

from __future__ import annotations

import pytest
from shopctl.render import EnvironmentRender
from shopflow_kit.config import ServiceSettings

from tests.utils.gitops import ENVS

KIT_DEFAULT = ServiceSettings.model_fields["shutdown_grace_seconds"].default


@pytest.mark.parametrize("env", ENVS)
def test_service_grace_is_shorter_than_the_pods(
    rendered: dict[str, EnvironmentRender], env: str
) -> None:
    checked = []
    for app in rendered[env].applications:
        docs = app.documents
        config = {
            key: value
            for doc in docs
            if doc["kind"] == "ConfigMap"
            for key, value in (doc.get("data") or {}).items()
        }
        for deployment in (d for d in docs if d["kind"] == "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            overrides = [v for k, v in config.items() if k.endswith("_SHUTDOWN_GRACE_SECONDS")]
            grace = float(overrides[0]) if overrides else KIT_DEFAULT
            budget = pod["terminationGracePeriodSeconds"] - pre_stop
            assert grace < budget, (
                f"{env}/{deployment['metadata']['name']}: the service drains for up to "
                f"{grace}s but is killed {budget}s after SIGTERM"
            )
            checked.append(deployment["metadata"]["name"])
    assert checked, f"no Deployment rendered for {env}"
