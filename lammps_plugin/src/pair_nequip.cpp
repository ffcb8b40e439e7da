// pair_style nequip: see pair_nequip.h.

#include "pair_nequip.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cstring>
#include <numeric>

using namespace LAMMPS_NS;

static const char *USAGE = "pair_style nequip MODEL [mode auto|domain|gathered] [dtype float32|float64]";

PairNequIP::PairNequIP(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;    // the model is named again after read_restart
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairNequIP::~PairNequIP()
{
  memory->destroy(fbuf);
  memory->destroy(ebuf);
  memory->destroy(vbuf);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
  if (ghost_set && comm->cutghostuser == ghost_we_set) comm->cutghostuser = user_cutghost;
}

void PairNequIP::settings(int narg, char **arg)
{
  const ltau_callbacks *cb = LtauBridge::callbacks();
  if (!cb) error->all(FLERR, LtauBridge::NO_DRIVER, "pair_style nequip");
  if (narg < 1) error->all(FLERR, "Illegal pair_style nequip command: expected {}", USAGE);
  model_arg = arg[0];
  dtype = "float32";
  mode_request = MODE_AUTO;
  for (int i = 1; i < narg; i += 2) {
    const std::string key = arg[i];
    if (key != "mode" && key != "dtype")
      error->all(FLERR, "pair_style nequip: unknown keyword '{}' (expected mode or dtype): {}", key,
                 USAGE);
    if (i + 1 >= narg) error->all(FLERR, "pair_style nequip: keyword '{}' needs a value: {}", key, USAGE);
    const std::string value = arg[i + 1];
    if (key == "mode") {
      if (value == "auto") mode_request = MODE_AUTO;
      else if (value == "domain") mode_request = MODE_DOMAIN;
      else if (value == "gathered") mode_request = MODE_GATHERED;
      else error->all(FLERR, "pair_style nequip: mode must be auto, domain or gathered, not '{}'", value);
    } else {
      if (value != "float32" && value != "float64")
        error->all(FLERR, "pair_style nequip: dtype must be float32 or float64, not '{}'", value);
      dtype = value;
    }
  }

  ltau_pair_settings_args a;
  std::memset(&a, 0, sizeof(a));
  a.model = model_arg.c_str();
  a.dtype = dtype.c_str();
  int status = cb->pair_settings(&a);
  LtauBridge::check_status(lmp, world, status, "pair_style nequip");
  r_max = a.r_max;
  num_layers = a.num_layers;
  if (allocated) {    // a new pair_style line: species must be given again
    for (int i = 1; i <= atom->ntypes; ++i)
      for (int j = i; j <= atom->ntypes; ++j) setflag[i][j] = 0;
  }
}

void PairNequIP::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
}

void PairNequIP::coeff(int narg, char **arg)
{
  const ltau_callbacks *cb = LtauBridge::callbacks();
  if (!cb) error->all(FLERR, LtauBridge::NO_DRIVER, "pair_style nequip");
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "pair_coeff for pair_style nequip must be 'pair_coeff * * EL...' with one element per atom "
               "type ({} types, {} elements given)",
               ntypes, std::max(0, narg - 2));
  if (!allocated) allocate();

  std::string elements;
  for (int i = 2; i < narg; ++i) elements += (i > 2 ? " " : "") + std::string(arg[i]);
  ltau_pair_coeff_args a;
  std::memset(&a, 0, sizeof(a));
  a.elements = elements.c_str();
  a.ntypes = ntypes;
  int status = cb->pair_coeff(&a);
  LtauBridge::check_status(lmp, world, status, "pair_coeff");

  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;
}

int PairNequIP::choose_mode()
{
  const bool periodic = domain->periodicity[0] && domain->periodicity[1] && domain->periodicity[2];
  if (mode_request != MODE_AUTO) return mode_request;
  if (!periodic) return MODE_DOMAIN;
  // One rank: gathered has no ghosts at all. Several: domain mode evaluates the edges into the
  // atoms within (L-1) r_max of a rank's subdomain (its receptive field), gathered the whole cell
  // on every rank plus an all-gather; gathered when the first is at least 1.2x the second (uniform
  // density; 1.2 measured: 4056 Li atoms on 2 ranks at 1.08x ran 9% faster in domain mode).
  if (comm->nprocs == 1) return MODE_GATHERED;
  const double shell = (num_layers - 1) * r_max;
  const double prd[3] = {domain->xprd, domain->yprd, domain->zprd};
  double extended = 1.0, volume = 1.0;
  for (int d = 0; d < 3; ++d) {
    extended *= prd[d] / std::max(1, comm->procgrid[d]) + 2.0 * shell;
    volume *= prd[d];
  }
  return extended >= 1.2 * volume ? MODE_GATHERED : MODE_DOMAIN;
}

void PairNequIP::init_style()
{
  if (!LtauBridge::callbacks()) error->all(FLERR, LtauBridge::NO_DRIVER, "pair_style nequip");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style nequip requires 'units metal' (the model works in eV and Å), not units {}",
               update->unit_style);
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style nequip requires atom IDs (atom_modify id yes)");
  if (force->pair != this)
    error->all(FLERR, "pair_style nequip cannot be a sub-style of pair_style hybrid; use it alone");

  const int mode = choose_mode();
  const bool periodic = domain->periodicity[0] && domain->periodicity[1] && domain->periodicity[2];
  if (ghost_set && comm->cutghostuser != ghost_we_set) {    // the user ran comm_modify cutoff since
    user_cutghost = comm->cutghostuser;
    ghost_set = false;
  }
  if (mode == MODE_DOMAIN) {
    if (!force->newton_pair)
      error->all(FLERR,
                 "pair_style nequip mode domain requires newton_pair on (the LAMMPS default): remove "
                 "'newton off' or use mode gathered");
    if (comm->mode != Comm::SINGLE)
      error->all(FLERR, "pair_style nequip mode domain requires comm_modify mode single");
    // message passing: the energy of a local atom depends on atoms up to L*r_max away
    const double need = num_layers * r_max + neighbor->skin;
    if (!ghost_set) {
      user_cutghost = comm->cutghostuser;
      ghost_set = true;
    }
    comm->cutghostuser = std::max(user_cutghost, need);
    ghost_we_set = comm->cutghostuser;
  } else {
    if (!periodic)
      error->all(FLERR, "pair_style nequip mode gathered needs a box periodic in x, y and z; use mode domain");
    if (ghost_set) {
      comm->cutghostuser = user_cutghost;
      ghost_set = false;
    }
  }
  // gathered: the model gives the virial of the whole cell; f.r over ghosts would be wrong
  no_virial_fdotr_compute = (mode == MODE_GATHERED) ? 1 : 0;

  if (mode != mode_used && comm->me == 0)
    utils::logmesg(lmp,
                   "pair nequip: mode {}{} (L = {} layers, r_max = {:.4g} Å{}), dtype {}\n",
                   mode == MODE_DOMAIN ? "domain" : "gathered", mode_request == MODE_AUTO ? " (auto)" : "",
                   num_layers, r_max,
                   mode == MODE_DOMAIN
                       ? fmt::format(", ghost cutoff {:.4g} Å", num_layers * r_max + neighbor->skin)
                       : std::string(),
                   dtype);
  mode_used = mode;
}

double PairNequIP::init_one(int, int)
{
  // the neighbour-list cutoff; the ghost shell of L*r_max is requested in init_style()
  return r_max;
}

void PairNequIP::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (mode_used == MODE_GATHERED)
    compute_gathered();
  else
    compute_domain();
}

void PairNequIP::fill_box(ltau_pair_compute_args &a)
{
  a.step = update->ntimestep;
  LtauBridge::fill_box(lmp, a.boxlo, a.h);
  a.periodic = domain->periodicity[0] && domain->periodicity[1] && domain->periodicity[2];
}

void PairNequIP::compute_domain()
{
  const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
  if (nall > nmax) {
    nmax = nall;
    memory->destroy(fbuf);
    memory->destroy(ebuf);
    memory->create(fbuf, 3 * nmax, "pair:nequip:fbuf");
    memory->create(ebuf, nmax, "pair:nequip:ebuf");
  }
  if (vflag_atom && nall > vmax) {
    vmax = nall;
    memory->destroy(vbuf);
    memory->create(vbuf, 6 * vmax, "pair:nequip:vbuf");
  }

  ltau_pair_compute_args a;
  std::memset(&a, 0, sizeof(a));
  fill_box(a);
  a.mode = MODE_DOMAIN;
  a.nlocal = nlocal;
  a.nrows = nall;
  a.x = nall ? &atom->x[0][0] : nullptr;
  a.type = atom->type;
  a.tag = atom->tag;
  a.f = fbuf;
  a.eatom = ebuf;
  a.vatom = vflag_atom ? vbuf : nullptr;
  int status = LtauBridge::callbacks()->pair_compute(&a);
  LtauBridge::check_status(lmp, world, status, "pair nequip");

  double **f = atom->f, **x = atom->x;
  // newton_pair on: LAMMPS zeroed f on local+ghost atoms and sends ghost forces to their owners
  for (int i = 0; i < nall; ++i)
    for (int d = 0; d < 3; ++d) f[i][d] += fbuf[3 * i + d];
  for (int i = 0; i < nlocal; ++i) {
    if (eflag_global) eng_vdwl += ebuf[i];
    if (eflag_atom) eatom[i] += ebuf[i];
  }
  if (vflag_atom)    // ghost rows too: compute stress/atom reverse-communicates them
    for (int i = 0; i < nall; ++i)
      for (int k = 0; k < 6; ++k) vatom[i][k] += vbuf[6 * i + k];
  // with E_rank = sum of local energies and f = -dE_rank/dx on local+ghost atoms,
  // sum x (x) f over local+ghost is this rank's share of the periodic virial
  if (vflag_fdotr || vflag_global) {
    for (int i = 0; i < nall; ++i) {
      const double *fi = fbuf + 3 * i;
      virial[0] += fi[0] * x[i][0];
      virial[1] += fi[1] * x[i][1];
      virial[2] += fi[2] * x[i][2];
      virial[3] += fi[1] * x[i][0];
      virial[4] += fi[2] * x[i][0];
      virial[5] += fi[2] * x[i][1];
    }
    vflag_fdotr = 0;
  }
}

void PairNequIP::compute_gathered()
{
  const int nlocal = atom->nlocal, nprocs = comm->nprocs;
  counts.resize(nprocs);
  displs.resize(nprocs);
  counts3.resize(nprocs);
  displs3.resize(nprocs);
  MPI_Allgather(&nlocal, 1, MPI_INT, counts.data(), 1, MPI_INT, world);
  int n = 0;
  for (int p = 0; p < nprocs; ++p) {
    displs[p] = n;
    counts3[p] = 3 * counts[p];
    displs3[p] = 3 * n;
    n += counts[p];
  }
  gtag.resize(n);
  gtype.resize(n);
  gx.resize(3 * n);
  MPI_Allgatherv(atom->tag, nlocal, MPI_LMP_TAGINT, gtag.data(), counts.data(), displs.data(),
                 MPI_LMP_TAGINT, world);
  MPI_Allgatherv(atom->type, nlocal, MPI_INT, gtype.data(), counts.data(), displs.data(), MPI_INT, world);
  MPI_Allgatherv(nlocal ? &atom->x[0][0] : nullptr, 3 * nlocal, MPI_DOUBLE, gx.data(), counts3.data(),
                 displs3.data(), MPI_DOUBLE, world);

  // rows sorted by tag: the same graph whatever the number of ranks
  order.resize(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int i, int j) { return gtag[i] < gtag[j]; });
  stag.resize(n);
  stype.resize(n);
  sx.resize(3 * n);
  for (int r = 0; r < n; ++r) {
    stag[r] = gtag[order[r]];
    stype[r] = gtype[order[r]];
    for (int d = 0; d < 3; ++d) sx[3 * r + d] = gx[3 * order[r] + d];
  }
  gf.assign(3 * n, 0.0);
  ge.assign(n, 0.0);
  if (vflag_atom) gvatom.assign(6 * n, 0.0);
  double cell_virial[6] = {0, 0, 0, 0, 0, 0};

  ltau_pair_compute_args a;
  std::memset(&a, 0, sizeof(a));
  fill_box(a);
  a.mode = MODE_GATHERED;
  a.nlocal = n;
  a.nrows = n;
  a.x = sx.data();
  a.type = stype.data();
  a.tag = stag.data();
  a.f = gf.data();
  a.eatom = ge.data();
  a.vatom = vflag_atom ? gvatom.data() : nullptr;
  a.virial = cell_virial;
  int status = LtauBridge::callbacks()->pair_compute(&a);
  LtauBridge::check_status(lmp, world, status, "pair nequip");

  double **f = atom->f;
  for (int i = 0; i < nlocal; ++i) {
    const int r = (int) (std::lower_bound(stag.begin(), stag.end(), atom->tag[i]) - stag.begin());
    for (int d = 0; d < 3; ++d) f[i][d] += gf[3 * r + d];
    if (eflag_global) eng_vdwl += ge[r];
    if (eflag_atom) eatom[i] += ge[r];
    if (vflag_atom)
      for (int k = 0; k < 6; ++k) vatom[i][k] += gvatom[6 * r + k];
  }
  // every rank evaluated the same cell; pressure sums the ranks' virials, so count it once
  if (vflag_global && comm->me == 0)
    for (int k = 0; k < 6; ++k) virial[k] += cell_virial[k];
}

double PairNequIP::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) nmax * 4 * sizeof(double) + (double) vmax * 6 * sizeof(double);
  bytes += (double) (gx.capacity() + sx.capacity() + gf.capacity() + ge.capacity() + gvatom.capacity()) *
      sizeof(double);
  return bytes;
}
