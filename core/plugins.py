"""Loading plugins and calling their hooks.

Plugins come from the entry-point group ``isengard.plugins`` and from local Python files
listed under ``scripts:``. Installed is not enabled: a plugin runs when its section in
``plugins:`` enables it; first-party plugins that make the out-of-the-box experience
declare ``ENABLED_BY_DEFAULT = True``. Hooks are called one implementation at a time so
that a failing plugin is isolated and logged with its name (pluggy alone would stop at
the first exception).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from isengard_sdk import hookspecs
from isengard_sdk.context import Context, KernelServices, ServerInfo
from isengard_sdk.errors import HttpError
from isengard_sdk.settings import SettingsError, load_settings

from .errors import ConfigError, StartupError

__all__ = ["ENTRY_POINT_GROUP", "LoadedPlugin", "PluginHost"]

ENTRY_POINT_GROUP = "isengard.plugins"
FIRST_PARTY_PREFIX = "isengard_plugins."
log = logging.getLogger("isengard.plugins")


@dataclass
class LoadedPlugin:
    name: str
    obj: Any
    source: str  # "entry-point", "script" or "builtin"
    version: str
    description: str
    settings: Any
    context: Context | None = None


def _plugin_meta(obj: Any) -> tuple[str, str]:
    version = str(getattr(obj, "__version__", "") or "")
    doc = (getattr(obj, "__doc__", "") or "").strip().splitlines()
    return version, doc[0] if doc else ""


class PluginHost:
    """The plugin manager of one server (no global state: two servers, two hosts)."""

    def __init__(self, plugin_config: Mapping[str, Any], scripts: Iterable[str] = (),
                 *, extra: Iterable[tuple[str, Any]] = (), use_entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, LoadedPlugin] = {}
        available: dict[str, tuple[Any, str]] = {}
        if use_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                available[ep.name] = (ep, "entry-point")
        for name, obj in extra:
            available[name] = (obj, "builtin")
        config = dict(plugin_config or {})
        unknown = sorted(set(config) - set(available))
        if unknown:
            installed = ", ".join(sorted(available)) or "none"
            raise ConfigError(
                f"plugins.{unknown[0]}",
                f"no plugin named {unknown[0]!r} is installed (installed: {installed}); "
                "fix the name or install the plugin's package")
        for name, (source_obj, source) in sorted(available.items()):
            section = config.get(name)
            enabled, section = self._enabled(name, section, source_obj)
            if not enabled:
                continue
            obj = source_obj.load() if source == "entry-point" else source_obj
            self._register(name, obj, source, section)
        for script in scripts:
            path = Path(script)
            obj = self._load_script(path)
            name = path.stem
            if name in self.plugins:
                raise ConfigError("scripts", f"script {path} has the same name as the "
                                             f"plugin {name!r}: rename the file")
            self._register(name, obj, "script", config.get(name))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise ConfigError("plugins", f"{exc} — check the spelling of the hook name "
                                         "against isengard_sdk.hookspecs") from exc

    @staticmethod
    def _enabled(name: str, section: Any, obj: Any) -> tuple[bool, dict[str, Any]]:
        if isinstance(section, bool):
            return section, {}
        if section is None:
            module = getattr(obj, "module", None) or getattr(obj, "__name__", "")
            first_party = str(module).startswith(FIRST_PARTY_PREFIX)
            default = False
            if first_party:
                target = obj.load() if hasattr(obj, "load") else obj
                default = bool(getattr(target, "ENABLED_BY_DEFAULT", False))
            return default, {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"plugins.{name}", "expected a mapping of settings or "
                                                 "true/false")
        section = dict(section)
        enabled = section.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"plugins.{name}.enabled", "expected true or false")
        return enabled, section

    def _register(self, name: str, obj: Any, source: str, section: Any) -> None:
        settings_type = getattr(obj, "Settings", None)
        section = {k: v for k, v in dict(section or {}).items() if k != "enabled"}
        if settings_type is not None and dataclasses.is_dataclass(settings_type):
            try:
                settings = load_settings(settings_type, section, f"plugins.{name}")
            except SettingsError as exc:
                raise ConfigError(exc.path, exc.message) from exc
        else:
            settings = section
        try:
            self.pm.register(obj, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise ConfigError(f"plugins.{name}", f"plugin {name!r} is invalid: {exc}") from exc
        version, description = _plugin_meta(obj)
        self.plugins[name] = LoadedPlugin(name, obj, source, version, description, settings)

    @staticmethod
    def _load_script(path: Path) -> ModuleType:
        if not path.is_file():
            raise ConfigError("scripts", f"script {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"isengard_script_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ConfigError("scripts", f"script {path} cannot be loaded as Python")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError("scripts", f"script {path} failed to load: "
                                         f"{type(exc).__name__}: {exc}") from exc
        return module

    def bind(self, services: KernelServices, server: ServerInfo, data_dir: Path) -> None:
        """Create each plugin's context (once the kernel's services exist)."""
        for p in self.plugins.values():
            p.context = Context(
                name=p.name, settings=p.settings,
                log=logging.getLogger(f"isengard.plugins.{p.name}"),
                data_dir=data_dir / "plugins" / p.name, server=server, services=services)

    # -- calling hooks -----------------------------------------------------------------

    def _impls(self, hook: str) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook)
        return list(reversed(caller.get_hookimpls()))  # pluggy's call order

    def has_impl(self, hook: str) -> bool:
        return bool(self._impls(hook))

    def implementers(self, hook: str) -> list[str]:
        """The names of the plugins implementing ``hook``."""
        return [impl.plugin_name for impl in self._impls(hook)]

    def _call(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        plugin = self.plugins[impl.plugin_name]
        args = {"context": plugin.context, **kwargs}
        return impl.function(**{a: args[a] for a in impl.argnames})

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of an ``on_*`` hook, isolating failures."""
        for impl in self._impls(hook):
            try:
                self._call(impl, kwargs)
            except Exception:
                log.exception("plugin %r failed in %s", impl.plugin_name, hook)

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a ``register_*`` hook: (plugin name, item) for every item returned."""
        out: list[tuple[str, Any]] = []
        for impl in self._impls(hook):
            try:
                items = self._call(impl, kwargs) or []
            except Exception:
                log.exception("plugin %r failed in %s; its contribution is left out",
                              impl.plugin_name, hook)
                continue
            out += [(impl.plugin_name, item) for item in items]
        return out

    def first(self, hook: str, **kwargs: Any) -> tuple[str, Any] | None:
        """Call a provider hook: the first non-None answer, with the plugin's name."""
        for impl in self._impls(hook):
            try:
                result = self._call(impl, kwargs)
            except HttpError:
                raise  # a plugin's answer to the current REST request
            except Exception as exc:
                raise StartupError(f"plugin {impl.plugin_name!r} failed in {hook}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            if result is not None:
                return impl.plugin_name, result
        return None

    def veto(self, hook: str, **kwargs: Any) -> str | None:
        """Call a ``filter_*`` hook: the reason of the first rejection, or None."""
        for impl in self._impls(hook):
            try:
                answer = self._call(impl, kwargs)
            except Exception as exc:
                log.exception("plugin %r failed in %s; rejecting (fail closed)",
                              impl.plugin_name, hook)
                return f"plugin {impl.plugin_name!r} failed: {type(exc).__name__}: {exc}"
            if answer is False:
                return f"rejected by plugin {impl.plugin_name!r}"
            if isinstance(answer, str):
                return f"rejected by plugin {impl.plugin_name!r}: {answer}"
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [{"ID": p.name, "Version": p.version, "Description": p.description,
                 "Source": p.source} for p in self.plugins.values()]
