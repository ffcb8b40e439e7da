"""The ltau-md application: the ``ltau-md`` command line (one module per subcommand in
``commands/``) and the workflows that combine the layers below it — the active-learning loop and
the demo. It may import every layer: the science core (``ltau_md``), the NequIP adapter
(``ltau_md.nequip``) and the LAMMPS plugin (``lammps_plugin``); nothing imports it."""
