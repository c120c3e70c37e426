"""powergrid: the power-system domain of heron-grid (devices, IEEE-13 networks, fast AC power
flow, offline profiles and multi-agent environments)."""

__version__ = "0.1.0"

__all__ = ["make", "make_vector", "scenarios"]


def __getattr__(name: str):
    # Lazy: ``import powergrid`` stays light (no pandapower) until an env is asked for.
    if name in __all__:
        import powergrid.scenarios as registry

        return registry if name == "scenarios" else getattr(registry, name)
    raise AttributeError(f"module 'powergrid' has no attribute {name!r}")


def _register_gymnasium_ids() -> None:
    # cheap: gymnasium is a core dependency and the entry point is a string (lazy import)
    import gymnasium

    env_id = "heron-grid/CentralizedMicrogrids-v0"
    if env_id not in gymnasium.registry:
        gymnasium.register(env_id,
                           entry_point="powergrid.wrappers.centralized:CentralizedMicrogrids")


_register_gymnasium_ids()
