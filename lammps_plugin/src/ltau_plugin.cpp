// ltau-md LAMMPS plugin: registers pair_style nequip and fix ltau, and exports the C functions
// through which the Python driver registers its callbacks, reports errors and reads halts.

#include "ltau_bridge.h"

#include "domain.h"
#include "error.h"
#include "lammps.h"
#include "lmptype.h"
#include "lammpsplugin_compat.h"

#include "fix_ltau.h"
#include "pair_nequip.h"

#include <cstring>
#include <string>

using namespace LAMMPS_NS;

namespace {

struct Registry {
  ltau_callbacks callbacks;
  bool registered = false;
  char message[4096] = {0};
  int halt_kind = 0;
  int64_t halt_step = -1;
  int64_t halt_count = 0;
};

Registry registry;

Pair *pair_nequip_creator(LAMMPS *lmp)
{
  return new PairNequIP(lmp);
}

Fix *fix_ltau_creator(LAMMPS *lmp, int narg, char **arg)
{
  return new FixLtau(lmp, narg, arg);
}

}    // namespace

const char *const LtauBridge::NO_DRIVER =
    "{} needs the ltau-md driver: run `ltau-md run SCRIPT` (or mpiexec -n P ltau-md run SCRIPT)";

const ltau_callbacks *LtauBridge::callbacks()
{
  return registry.registered ? &registry.callbacks : nullptr;
}

void LtauBridge::check_status(LAMMPS *lmp, MPI_Comm world, int status, const char *where)
{
  int me, nprocs;
  MPI_Comm_rank(world, &me);
  MPI_Comm_size(world, &nprocs);
  int mine = status ? me : nprocs, first = nprocs;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world);
  if (first == nprocs) return;
  char text[sizeof(registry.message)];
  if (me == first) {
    // a callback that failed without a message (should not happen: all are guarded)
    std::strncpy(text, registry.message[0] ? registry.message : "failed without a message",
                 sizeof(text) - 1);
    text[sizeof(text) - 1] = 0;
  }
  MPI_Bcast(text, sizeof(text), MPI_CHAR, first, world);
  registry.message[0] = 0;
  if (first == 0)
    lmp->error->all(FLERR, "{}: {}", where, text);
  else
    lmp->error->all(FLERR, "{}: {} [rank {}]", where, text, first);
}

void LtauBridge::fail_one(LAMMPS *lmp, const char *where)
{
  lmp->error->one(FLERR, "{}: {}", where, registry.message[0] ? registry.message : "failed without a message");
}

void LtauBridge::fill_box(LAMMPS_NS::LAMMPS *lmp, double boxlo[3], double h[6])
{
  const LAMMPS_NS::Domain *domain = lmp->domain;
  for (int d = 0; d < 3; ++d) boxlo[d] = domain->boxlo[d];
  h[0] = domain->xprd;
  h[1] = domain->yprd;
  h[2] = domain->zprd;
  h[3] = domain->xy;
  h[4] = domain->xz;
  h[5] = domain->yz;
}

void LtauBridge::record_halt(int kind, int64_t step, int64_t count)
{
  registry.halt_kind = kind;
  registry.halt_step = step;
  registry.halt_count = count;
}

extern "C" {

int ltau_abi_version()
{
  return LTAU_ABI_VERSION;
}

int ltau_abi_size(const char *name)
{
  const std::string n = name ? name : "";
  if (n == "pair_settings") return (int) sizeof(ltau_pair_settings_args);
  if (n == "pair_coeff") return (int) sizeof(ltau_pair_coeff_args);
  if (n == "pair_compute") return (int) sizeof(ltau_pair_compute_args);
  if (n == "fix_create") return (int) sizeof(ltau_fix_create_args);
  if (n == "fix_init") return (int) sizeof(ltau_fix_init_args);
  if (n == "fix_compute") return (int) sizeof(ltau_fix_compute_args);
  if (n == "fix_frame") return (int) sizeof(ltau_fix_frame_args);
  if (n == "callbacks") return (int) sizeof(ltau_callbacks);
  if (n == "tagint") return (int) sizeof(tagint);
  if (n == "bigint") return (int) sizeof(bigint);
  return -1;
}

int ltau_register(const ltau_callbacks *callbacks)
{
  if (!callbacks) return 1;
  registry.callbacks = *callbacks;
  registry.registered = true;
  return 0;
}

void ltau_unregister()
{
  registry.registered = false;
}

void ltau_set_error(const char *message)
{
  std::strncpy(registry.message, message ? message : "", sizeof(registry.message) - 1);
  registry.message[sizeof(registry.message) - 1] = 0;
}

int ltau_halt_kind()
{
  return registry.halt_kind;
}

int64_t ltau_halt_step()
{
  return registry.halt_step;
}

int64_t ltau_halt_count()
{
  return registry.halt_count;
}

void ltau_clear_halt()
{
  registry.halt_kind = 0;
  registry.halt_step = -1;
  registry.halt_count = 0;
}

void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto reg = (lammpsplugin_regfunc) regfunc;

  plugin.version = "22 Jul 2025";
  plugin.style = "pair";
  plugin.name = "nequip";
  plugin.info = "NequIP potential evaluated by ltau-md (domain mode with per-layer ghost exchange, or gathered)";
  plugin.author = "ltau-md";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &pair_nequip_creator;
  plugin.handle = handle;
  (*reg)(&plugin, lmp);

  plugin.style = "fix";
  plugin.name = "ltau";
  plugin.info = "LTAU per-atom uncertainty from the NequIP latents; dump, queue and halt";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &fix_ltau_creator;
  (*reg)(&plugin, lmp);
}
}
