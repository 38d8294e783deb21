"""start_ray: a node that missed Ray's fixed startup wait is started again; every other failure surfaces."""
import pytest

from pixelplan.distributed import runtime

ray = pytest.importorskip("ray")


class FakeRay:
    """Stands in for ray.init/ray.shutdown: fails with the given errors, then starts."""

    def __init__(self, errors):
        self.errors = list(errors)
        self.inits: list[dict] = []
        self.shutdowns = 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)

    def shutdown(self):
        self.shutdowns += 1


TIMEOUT = Exception("The current node timed out during startup. This could happen because ...")


@pytest.fixture
def fake(monkeypatch):
    def install(errors):
        f = FakeRay(errors)
        monkeypatch.setattr(ray, "init", f.init)
        monkeypatch.setattr(ray, "shutdown", f.shutdown)
        monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
        return f
    return install


def test_a_startup_timeout_is_retried_with_the_same_arguments(fake):
    f = fake([TIMEOUT, TIMEOUT])
    runtime.start_ray(num_cpus=4, namespace="x")
    assert f.inits == [{"num_cpus": 4, "namespace": "x"}] * 3 and f.shutdowns == 2


def test_retries_are_bounded(fake):
    f = fake([TIMEOUT] * 5)
    with pytest.raises(Exception, match="timed out during startup"):
        runtime.start_ray(tries=3, num_cpus=4)
    assert len(f.inits) == 3


@pytest.mark.parametrize("error, kwargs", [(ValueError("bad num_cpus"), {"num_cpus": -1}),
                                           (TIMEOUT, {"address": "10.0.0.1:6379"})])
def test_other_errors_and_joining_a_cluster_are_not_retried(fake, error, kwargs):
    f = fake([error])
    with pytest.raises(type(error)):
        runtime.start_ray(**kwargs)
    assert len(f.inits) == 1 and f.shutdowns == 0
