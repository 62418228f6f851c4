"""Processors written in Python that ship with FlowOS. A configuration names one by its module's
name, as it names a C built-in (`pipeline: [{flow_log: {path: flows.jsonl}}]`); each module here
defines one flowos.Processor subclass. Adding a built-in is adding its file: the package is
installed whole, and the configuration finds its modules by name (docs/processors.md, "Python
built-ins")."""
import importlib
import inspect
import pkgutil

from flowos.processor import Processor


def names():
    """The Python built-ins' names, sorted."""
    return sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_"))


def import_path(name):
    """Built-in `name`'s processor as an import path (module:Class), or None if there is none."""
    if name not in names():
        return None
    module = importlib.import_module(f"{__name__}.{name}")
    classes = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, Processor) and cls.__module__ == module.__name__]
    assert len(classes) == 1, f"{module.__name__} must define one flowos.Processor subclass, not {len(classes)}"
    return f"{module.__name__}:{classes[0].__qualname__}"
