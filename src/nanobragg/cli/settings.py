"""What one command line asks for: the experiment plus files, outputs and run options."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..config.experiment import Experiment, OutputConfig


@dataclass
class InputFiles:
    hkl: Optional[str] = None
    mat: Optional[str] = None
    sourcefile: Optional[str] = None
    img: Optional[str] = None
    mask: Optional[str] = None
    stol: Optional[str] = None  #: read as C reads it; not used for the image
    stolout: Optional[str] = None
    mtz: Optional[str] = None  #: merged MTZ (-mtz), see nanobragg.io.structures
    mtz_column: Optional[str] = None  #: its column label (-mtz_column), also for -sfcif
    sfcif: Optional[str] = None  #: structure-factor mmCIF (-sfcif)
    pdb: Optional[str] = None  #: coordinate model, PDB or mmCIF (-pdb)
    solvent: Optional[tuple] = None  #: (k_sol, B_sol) bulk solvent of -pdb
    anomalous: bool = False  #: f', f'' of -pdb at the wavelength
    geom: Optional[str] = None  #: CrystFEL geometry file: one image per panel (nanobragg.cli.panels)


@dataclass
class RunOptions:
    dtype: str = "float32"
    device: str = "auto"
    max_memory_mb: Optional[float] = None
    help: bool = False
    #: None: the default policy (nanobragg.engine.policy); True: -compile; False: -nocompile; "numba": -numba
    compile: Optional[bool | str] = None
    prepare: bool = False  #: -prepare: build the compiled kernel of this kind of run, render nothing


@dataclass
class Settings:
    experiment: Experiment = field(default_factory=Experiment)
    output: OutputConfig = field(default_factory=OutputConfig)
    files: InputFiles = field(default_factory=InputFiles)
    run: RunOptions = field(default_factory=RunOptions)
    source: Optional[str] = None  #: the flag (or file and key) now being applied, recorded by assign

    def budget_bytes(self) -> int:
        """The run's memory budget in bytes: -max_memory, else the engine's default."""
        from ..engine.chunks import default_budget_bytes

        mb = self.run.max_memory_mb
        return int(mb * 2 ** 20) if mb else default_budget_bytes()

    @property
    def origins(self) -> dict:
        """Dotted field -> the flag or file key that last set it (shared with ``experiment.origins``)."""
        return self.experiment.origins

    def assign(self, target: str, value) -> None:
        """Set a dotted field such as ``detector.distance`` (or ``output.seed``), noting its source."""
        head, _, name = target.partition(".")
        obj = getattr(self, head) if head in ("output", "files", "run") else getattr(self.experiment, head)
        if not hasattr(obj, name):
            raise AttributeError(f"no setting {target}")
        setattr(obj, name, value)
        if self.source is not None:
            self.origins[target] = self.source
