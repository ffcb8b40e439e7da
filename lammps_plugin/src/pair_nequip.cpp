// pair_style nequip: see pair_nequip.h.

#include "pair_nequip.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cstring>
#include <numeric>

using namespace LAMMPS_NS;

static const char *USAGE =
    "pair_style nequip MODEL [mode auto|domain|gathered] [dtype float32|float64] [device cpu|cuda|auto]";

// the pair whose mode-0 evaluation is running: ltau_exchange() communicates for it
static PairNequIP *active_pair = nullptr;

extern "C" int ltau_exchange(int reverse, void *data, int width, int element_size)
{
  if (!active_pair) return 1;
  return active_pair->exchange(reverse, data, width, element_size);
}

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
  device = "cpu";
  mode_request = MODE_AUTO;
  for (int i = 1; i < narg; i += 2) {
    const std::string key = arg[i];
    if (key != "mode" && key != "dtype" && key != "device")
      error->all(FLERR, "pair_style nequip: unknown keyword '{}' (expected mode, dtype or device): {}", key,
                 USAGE);
    if (i + 1 >= narg) error->all(FLERR, "pair_style nequip: keyword '{}' needs a value: {}", key, USAGE);
    const std::string value = arg[i + 1];
    if (key == "mode") {
      if (value == "auto") mode_request = MODE_AUTO;
      else if (value == "domain") mode_request = MODE_DOMAIN;
      else if (value == "gathered") mode_request = MODE_GATHERED;
      else error->all(FLERR, "pair_style nequip: mode must be auto, domain or gathered, not '{}'", value);
    } else if (key == "dtype") {
      if (value != "float32" && value != "float64")
        error->all(FLERR, "pair_style nequip: dtype must be float32 or float64, not '{}'", value);
      dtype = value;
    } else {
      if (value != "cpu" && value != "cuda" && value != "auto")
        error->all(FLERR, "pair_style nequip: device must be cpu, cuda or auto, not '{}'", value);
      device = value;
    }
  }

  ltau_pair_settings_args a;
  std::memset(&a, 0, sizeof(a));
  a.model = model_arg.c_str();
  a.dtype = dtype.c_str();
  a.device = device.c_str();
  int status = cb->pair_settings(&a);
  LtauBridge::check_status(lmp, world, status, "pair_style nequip");
  r_max = a.r_max;
  num_layers = a.num_layers;
  exchange_width = a.exchange_width;
  // LAMMPS sizes its communication buffers by these (per atom, in doubles)
  comm_forward = comm_reverse = exchange_width;
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
  std::vector<double> cutoff((size_t) (ntypes + 1) * (ntypes + 1), r_max);
  ltau_pair_coeff_args a;
  std::memset(&a, 0, sizeof(a));
  a.elements = elements.c_str();
  a.cutoff = cutoff.data();
  a.ntypes = ntypes;
  int status = cb->pair_coeff(&a);
  LtauBridge::check_status(lmp, world, status, "pair_coeff");
  edge_cutsq.resize(cutoff.size());
  for (size_t k = 0; k < cutoff.size(); ++k) edge_cutsq[k] = cutoff[k] * cutoff[k];

  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;
}

int PairNequIP::choose_mode()
{
  const bool periodic = domain->periodicity[0] && domain->periodicity[1] && domain->periodicity[2];
  int mode = mode_request;
  if (mode == MODE_AUTO) {
    if (!periodic) {
      mode = MODE_DOMAIN;
    } else {
      // Cost model (benchmarks/scaling.py on this project's 2-core VM, 1 torch thread per rank):
      // per rank, gathered evaluates every edge of the cell and rebuilds its graph in Python each
      // step (~1.2x the edge work of its atoms: 1-rank gathered/domain 1.04-1.18 at 2k-32k atoms),
      // domain evaluates its local atoms' edges (LAMMPS's neighbour list) plus, per ghost atom of
      // its r_max + skin shell, an embedding and one exchange per layer (~0.1 of a local atom):
      //   gathered ~ N_cell * (1 + GRAPH),   domain ~ N_sub + SHELL * N_ghost   (uniform density)
      // The cheaper wins: gathered for small cells (on 1 rank, below ~700 atoms), domain above.
      const double GRAPH = 0.2, SHELL = 0.1;
      const double shell = r_max + neighbor->skin;
      const double prd[3] = {domain->xprd, domain->yprd, domain->zprd};
      double sub = 1.0, ext = 1.0, volume = 1.0;
      for (int d = 0; d < 3; ++d) {
        const double l = prd[d] / std::max(1, comm->procgrid[d]);
        sub *= l;
        ext *= l + 2.0 * shell;
        volume *= prd[d];
      }
      const double gathered = volume * (1.0 + GRAPH);
      const double dom = sub + SHELL * (ext - sub);
      mode = dom < gathered ? MODE_DOMAIN : MODE_GATHERED;
    }
  }
  if (mode == MODE_DOMAIN && exchange_width == 0) mode = MODE_DEEP_SHELL;
  return mode;
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
  if (ghost_set) {    // only the deep shell raises the ghost cutoff; give the user's back otherwise
    comm->cutghostuser = user_cutghost;
    ghost_set = false;
  }
  if (mode == MODE_DOMAIN || mode == MODE_DEEP_SHELL) {
    if (!force->newton_pair)
      error->all(FLERR,
                 "pair_style nequip mode domain requires newton_pair on (the LAMMPS default): remove "
                 "'newton off' or use mode gathered");
  }
  if (mode == MODE_DOMAIN) {
    // edges of local centres within r_max: the ghost shell is the default cutforce + skin (a
    // larger comm_modify cutoff stays as the user set it)
    neighbor->add_request(this, NeighConst::REQ_FULL);
  } else if (mode == MODE_DEEP_SHELL) {
    if (comm->mode != Comm::SINGLE)
      error->all(FLERR, "pair_style nequip mode domain for this model requires comm_modify mode single");
    // without per-layer exchange, the energy of a local atom depends on atoms up to L*r_max away
    const double need = num_layers * r_max + neighbor->skin;
    user_cutghost = comm->cutghostuser;
    ghost_set = true;
    comm->cutghostuser = std::max(user_cutghost, need);
    ghost_we_set = comm->cutghostuser;
    if (mode != mode_used && comm->me == 0)
      error->warning(FLERR,
                     "pair nequip: this model has no ghost-exchange hook (nequip's ghost_exchange "
                     "modules); domain mode uses a ghost shell of L*r_max + skin = {:.4g} Å instead of "
                     "r_max + skin (exact, slower)",
                     need);
  } else if (!periodic) {
    error->all(FLERR, "pair_style nequip mode gathered needs a box periodic in x, y and z; use mode domain");
  }
  // gathered: the model gives the virial of the whole cell; f.r over ghosts would be wrong
  no_virial_fdotr_compute = (mode == MODE_GATHERED) ? 1 : 0;

  if (mode != mode_used && comm->me == 0) {
    std::string shell;
    if (mode == MODE_DOMAIN)
      shell = fmt::format(", per-layer ghost exchange, ghost cutoff {:.4g} Å",
                          std::max(comm->cutghostuser, r_max + neighbor->skin));
    else if (mode == MODE_DEEP_SHELL)
      shell = fmt::format(", ghost cutoff {:.4g} Å", comm->cutghostuser);
    utils::logmesg(lmp, "pair nequip: mode {}{} (L = {} layers, r_max = {:.4g} Å{}), dtype {}, device {}\n",
                   mode == MODE_GATHERED ? "gathered" : "domain", mode_request == MODE_AUTO ? " (auto)" : "",
                   num_layers, r_max, shell, dtype, device);
  }
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

void PairNequIP::build_edges()
{
  // every pair (i local, j local or ghost) of LAMMPS's full list within the type pair's cutoff
  const int inum = list->inum, ntp = atom->ntypes + 1;
  const int *ilist = list->ilist, *numneigh = list->numneigh, *type = atom->type;
  int **firstneigh = list->firstneigh;
  double **x = atom->x;
  size_t most = 0;
  for (int ii = 0; ii < inum; ++ii) most += numneigh[ilist[ii]];
  edges.resize(2 * most);
  vectors.resize(3 * most);
  size_t e = 0;
  for (int ii = 0; ii < inum; ++ii) {
    const int i = ilist[ii];
    const double *cut = &edge_cutsq[(size_t) type[i] * ntp];
    const int *jlist = firstneigh[i];
    for (int jj = 0; jj < numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cut[type[j]]) continue;
      edges[e] = i;
      edges[most + e] = j;
      vectors[3 * e] = dx;
      vectors[3 * e + 1] = dy;
      vectors[3 * e + 2] = dz;
      ++e;
    }
  }
  std::copy(edges.begin() + most, edges.begin() + most + e, edges.begin() + e);    // 2 x e rows
  edges.resize(2 * e);
  vectors.resize(3 * e);
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
  if (mode_used == MODE_DOMAIN) build_edges();

  ltau_pair_compute_args a;
  std::memset(&a, 0, sizeof(a));
  fill_box(a);
  a.mode = mode_used;
  a.nlocal = nlocal;
  a.nrows = nall;
  a.x = nall ? &atom->x[0][0] : nullptr;
  a.type = atom->type;
  a.tag = atom->tag;
  a.f = fbuf;
  a.eatom = ebuf;
  a.vatom = vflag_atom ? vbuf : nullptr;
  if (mode_used == MODE_DOMAIN) {
    a.edges = edges.data();
    a.vectors = vectors.data();
    a.nedges = (int64_t) (edges.size() / 2);
  }
  active_pair = this;
  int status = LtauBridge::callbacks()->pair_compute(&a);
  active_pair = nullptr;
  if (mode_used == MODE_DOMAIN && status != 0 && comm->nprocs > 1) {
    // this rank failed inside an evaluation whose exchanges the other ranks may be waiting in:
    // no collective can tell them, so the job ends here (the message names the rank)
    LtauBridge::fail_one(lmp, "pair nequip");
  }
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
  // with E_rank = sum of local energies and f = -dE/dx on local+ghost atoms,
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

int PairNequIP::exchange(int reverse, void *data, int width, int element_size)
{
  if (width < 0 || width > comm_forward || (element_size != 4 && element_size != 8)) return 2;
  xdata = data;
  xwidth = width;
  xelement = element_size;
  if (reverse)
    comm->reverse_comm(this, width);
  else
    comm->forward_comm(this, width);
  xdata = nullptr;
  return 0;
}

template <typename T> static int pack_rows(const T *d, int w, int n, const int *rows, int first, double *buf)
{
  int m = 0;
  for (int k = 0; k < n; ++k) {
    const T *row = d + (size_t) (rows ? rows[k] : first + k) * w;
    for (int c = 0; c < w; ++c) buf[m++] = (double) row[c];
  }
  return m;
}

template <typename T> static void unpack_rows(T *d, int w, int n, const int *rows, int first, const double *buf, bool add)
{
  int m = 0;
  for (int k = 0; k < n; ++k) {
    T *row = d + (size_t) (rows ? rows[k] : first + k) * w;
    if (add)
      for (int c = 0; c < w; ++c) row[c] += (T) buf[m++];
    else
      for (int c = 0; c < w; ++c) row[c] = (T) buf[m++];
  }
}

int PairNequIP::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  // node features are invariant under the periodic shift of an image: no pbc correction
  return xelement == 4 ? pack_rows((const float *) xdata, xwidth, n, list, 0, buf)
                       : pack_rows((const double *) xdata, xwidth, n, list, 0, buf);
}

void PairNequIP::unpack_forward_comm(int n, int first, double *buf)
{
  if (xelement == 4)
    unpack_rows((float *) xdata, xwidth, n, nullptr, first, buf, false);
  else
    unpack_rows((double *) xdata, xwidth, n, nullptr, first, buf, false);
}

int PairNequIP::pack_reverse_comm(int n, int first, double *buf)
{
  return xelement == 4 ? pack_rows((const float *) xdata, xwidth, n, nullptr, first, buf)
                       : pack_rows((const double *) xdata, xwidth, n, nullptr, first, buf);
}

void PairNequIP::unpack_reverse_comm(int n, int *list, double *buf)
{
  if (xelement == 4)
    unpack_rows((float *) xdata, xwidth, n, list, 0, buf, true);
  else
    unpack_rows((double *) xdata, xwidth, n, list, 0, buf, true);
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
                 MPI_LMP_TAGINT, world);  // tagint all the way
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
  bytes += (double) edges.capacity() * sizeof(int64_t) + (double) vectors.capacity() * sizeof(double);
  bytes += (double) (gx.capacity() + sx.capacity() + gf.capacity() + ge.capacity() + gvatom.capacity()) *
      sizeof(double);
  return bytes;
}
