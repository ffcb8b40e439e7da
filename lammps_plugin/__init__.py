"""Everything that touches LAMMPS: the C++ plugin (pair_style nequip, fix ltau), its build, and
the Python driver behind ``ltau-md run``. Imports point one way: this package uses ``ltau_md``;
``ltau_md`` never imports it (the CLI reaches it only for ``run``)."""
