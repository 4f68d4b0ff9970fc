"""Package layout: the top-level folders install as subpackages of one ``mediavault`` package.

The folders stay where the design card puts them (agent/, graph/, tools/, ... at the top of the
repository) but import as ``mediavault.agent``, ``mediavault.graph``, ... so that a service with
its own ``tools`` or ``graph`` package can use this one beside it. Metadata lives in
pyproject.toml; only the folder-to-package mapping, which pyproject cannot compute, is here.
"""

from setuptools import find_namespace_packages, setup

LAYERS = ("agent", "graph", "tools", "evals", "policies", "skills")

package_dir = {"mediavault": "mediavault"}
packages = ["mediavault"]
for layer in LAYERS:
    package_dir[f"mediavault.{layer}"] = layer
    # Namespace packages too: data folders (templates, static files, datasets, the skill).
    found = find_namespace_packages(layer, exclude=["*__pycache__*"])
    packages += [f"mediavault.{layer}", *(f"mediavault.{layer}.{name}" for name in found)]

setup(packages=packages, package_dir=package_dir)
