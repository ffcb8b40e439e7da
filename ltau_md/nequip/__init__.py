"""NequIP integration (needs torch and nequip): model access, the training error-log callback,
training runs and the uncertainty-aware ASE calculator."""


def __getattr__(name: str):
    # Lazy so that `import ltau_md.nequip.model` does not pull Lightning in, and the config
    # target `ltau_md.nequip.PerAtomForceErrorLogger` still resolves.
    if name == "PerAtomForceErrorLogger":
        from ltau_md.nequip.error_logger import PerAtomForceErrorLogger

        return PerAtomForceErrorLogger
    if name == "LtauCalculator":
        from ltau_md.nequip.calculator import LtauCalculator

        return LtauCalculator
    raise AttributeError(name)
