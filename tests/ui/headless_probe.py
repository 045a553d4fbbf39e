"""Runs in a plain Python with QGIS (no desktop): loads the plugin as qgis_process does
(``classFactory(None)``), checks its provider, settings and that nothing heavy was imported.
Prints a JSON result. Started by test_plugin_headless.py; argv[1] is a scratch profile folder.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for p in ("/usr/share/qgis/python/plugins", "/usr/share/qgis/python"):
    if os.path.isdir(p) and p not in sys.path:
        sys.path.append(p)

from qgis.core import QgsApplication, QgsSettings  # noqa: E402

app = QgsApplication([], False, sys.argv[1])
QgsApplication.setPrefixPath("/usr", True)
app.initQgis()
from processing.core.Processing import Processing  # noqa: E402

Processing.initialize()

import dlstudio_qgis  # noqa: E402
from dlstudio_qgis import settings  # noqa: E402

out = {}
registry = QgsApplication.processingRegistry()
plugin = dlstudio_qgis.classFactory(None)
out["methods"] = [
    m for m in ("initGui", "initProcessing", "unload") if callable(getattr(plugin, m))
]
plugin.initGui()  # with no iface: the provider only
provider = registry.providerById("dlstudio")
out["provider"] = provider is not None
out["algorithms"] = sorted(a.id() for a in provider.algorithms()) if provider else []
plugin.initProcessing()  # a second call adds nothing
out["providers_after_second_init"] = sum(p.id() == "dlstudio" for p in registry.providers())
out["heavy_modules"] = sorted(m for m in ("torch", "rasterio", "shapely", "torchvision")
                              if m in sys.modules)  # fmt: skip
plugin.unload()
out["provider_after_unload"] = registry.providerById("dlstudio") is not None
plugin.unload()  # idempotent

# settings
out["worker_default"] = settings.worker_python()
settings.set_worker_python("/opt/cuda-env/bin/python")
out["worker_set"] = settings.worker_python()
out["worker_ini"] = QgsSettings().value("dlstudio/worker_python")
settings.set_worker_python(None)
out["worker_reset"] = settings.worker_python()
out["command"] = settings.worker_command("info")
out["env_pythonpath"] = settings.worker_env({"PYTHONHOME": "/x", "PATH": "/bin"})
out["user_default"] = settings.user_name()
settings.set_user_name("  carla ")
out["user_set"] = settings.user_name()
settings.set_user_name("")
out["user_reset"] = settings.user_name()
print("RESULT " + json.dumps(out))
app.exitQgis()
