"""The built-in collectors, one small module each."""

from __future__ import annotations

from healthcheck.collectors.display import DisplayCollector
from healthcheck.collectors.env import EnvCollector
from healthcheck.collectors.gpu import GpuCollector
from healthcheck.collectors.healthcheck import HealthcheckCollector
from healthcheck.collectors.logs import LogsCollector
from healthcheck.collectors.ports import PortsCollector
from healthcheck.collectors.provisioning import ProvisioningCollector
from healthcheck.collectors.supervisor import SupervisorCollector
from healthcheck.collectors.system import SystemCollector

# In report order: the box first, then what runs on it.
BUILTIN_COLLECTORS = (
    SystemCollector,
    EnvCollector,
    SupervisorCollector,
    PortsCollector,
    DisplayCollector,
    GpuCollector,
    ProvisioningCollector,
    LogsCollector,
    HealthcheckCollector,
)

__all__ = ["BUILTIN_COLLECTORS"]
