// fix ltau: see fix_ltau.h.

#include "fix_ltau.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "pair.h"
#include "timer.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

using namespace LAMMPS_NS;
using namespace FixConst;

static const char *USAGE =
    "fix ID group ltau N ARTIFACT [k K] [scale S] [predictor calibrated|ltau] [lo auto|VALUE] [hi auto|VALUE] "
    "[nsamples N] [dump FILE] [queue DB] [dedup yes|no] [halt no|soft|hard]";

FixLtau::FixLtau(LAMMPS *lmp, int narg, char **arg) : Fix(lmp, narg, arg)
{
  const ltau_callbacks *cb = LtauBridge::callbacks();
  if (!cb) error->all(FLERR, LtauBridge::NO_DRIVER, "fix ltau");
  if (narg < 5) error->all(FLERR, "Illegal fix ltau command: expected {}", USAGE);
  if (!utils::is_integer(arg[3]) || (nevery = utils::inumeric(FLERR, arg[3], false, lmp)) <= 0)
    error->all(FLERR, "fix ltau: N must be a positive number of steps, not '{}'", arg[3]);
  artifact = arg[4];

  for (int i = 5; i < narg; i += 2) {
    const std::string key = arg[i];
    static const char *KEYS[] = {"k",    "scale", "predictor", "lo",   "hi",
                                 "nsamples", "dump", "queue", "dedup", "halt"};
    if (std::none_of(std::begin(KEYS), std::end(KEYS), [&](const char *k) { return key == k; }))
      error->all(FLERR,
                 "fix ltau: unknown keyword '{}' (expected k, scale, predictor, lo, hi, nsamples, dump, queue, "
                 "dedup or halt)",
                 key);
    if (i + 1 >= narg) error->all(FLERR, "fix ltau: keyword '{}' needs a value: {}", key, USAGE);
    const char *value = arg[i + 1];
    if (key == "k") {
      if (!utils::is_integer(value) || (k = utils::inumeric(FLERR, value, false, lmp)) < 1)
        error->all(FLERR, "fix ltau: k must be a positive number of neighbours, not '{}'", value);
    } else if (key == "scale") {
      if (!utils::is_double(value) || !((scale = utils::numeric(FLERR, value, false, lmp)) > 0.0))
        error->all(FLERR, "fix ltau: scale must be a positive number, not '{}'", value);
    } else if (key == "predictor") {
      if (strcmp(value, "calibrated") != 0 && strcmp(value, "ltau") != 0)
        error->all(FLERR, "fix ltau: predictor must be calibrated or ltau, not '{}'", value);
      predictor = value;
    } else if (key == "dedup") {
      if (strcmp(value, "yes") == 0) dedup = 1;
      else if (strcmp(value, "no") == 0) dedup = 0;
      else error->all(FLERR, "fix ltau: dedup must be yes or no, not '{}'", value);
    } else if (key == "lo" || key == "hi") {
      const bool isauto = strcmp(value, "auto") == 0;
      double v = 0.0;
      if (!isauto && (!utils::is_double(value) || !((v = utils::numeric(FLERR, value, false, lmp)) > 0.0)))
        error->all(FLERR, "fix ltau: {} must be auto or a positive error in eV/Å, not '{}'", key, value);
      if (key == "lo") {
        lo_auto = isauto;
        lo_value = v;
      } else {
        hi_auto = isauto;
        hi_value = v;
      }
    } else if (key == "nsamples") {
      if (!utils::is_integer(value) || (nsamples = utils::bnumeric(FLERR, value, false, lmp)) < 2)
        error->all(FLERR, "fix ltau: nsamples must be an integer of at least 2, not '{}'", value);
    } else if (key == "dump") {
      dump = value;
    } else if (key == "queue") {
      queue = value;
    } else {
      if (strcmp(value, "no") == 0) halt = LtauBridge::HALT_NO;
      else if (strcmp(value, "soft") == 0) halt = LtauBridge::HALT_SOFT;
      else if (strcmp(value, "hard") == 0) halt = LtauBridge::HALT_HARD;
      else error->all(FLERR, "fix ltau: halt must be no, soft or hard, not '{}'", value);
    }
  }
  if (!lo_auto && !hi_auto && lo_value > hi_value)
    error->all(FLERR, "fix ltau: lo {} is above hi {}", lo_value, hi_value);
  check_pair();

  ltau_fix_create_args a;
  std::memset(&a, 0, sizeof(a));
  a.id = id;
  a.artifact = artifact.c_str();
  a.dump = dump.empty() ? nullptr : dump.c_str();
  a.queue = queue.empty() ? nullptr : queue.c_str();
  a.predictor = predictor.empty() ? nullptr : predictor.c_str();
  a.dedup = dedup;
  a.scale = scale;
  a.lo = lo_value;
  a.hi = hi_value;
  a.k = k;
  a.lo_auto = lo_auto;
  a.hi_auto = hi_auto;
  int status = cb->fix_create(&a);
  LtauBridge::check_status(lmp, world, status, "fix ltau");
  created = true;
  latent_dim = a.descriptor_dim;
  nbr_cutoff = a.neighbourhood_cutoff;
  if (nbr_cutoff > 0.0) comm_forward = 1;

  peratom_flag = 1;
  size_peratom_cols = NCOL;
  peratom_freq = nevery;
  restart_global = 1;    // the duplicate count goes on in a run resumed with read_restart
  vector_flag = 1;
  size_vector = NVEC;
  global_freq = nevery;
  extvector = 0;
  maxexchange = NCOL;

  FixLtau::grow_arrays(atom->nmax);
  atom->add_callback(Atom::GROW);
  for (int i = 0; i < atom->nlocal; ++i)
    for (int c = 0; c < NCOL; ++c) array[i][c] = 0.0;
}

FixLtau::~FixLtau()
{
  const ltau_callbacks *cb = LtauBridge::callbacks();
  if (created && cb) cb->fix_destroy(id);    // drops the artifact; nothing to report
  atom->delete_callback(id, Atom::GROW);
  memory->destroy(array);
}

int FixLtau::setmask()
{
  return END_OF_STEP | POST_RUN | MIN_POST_FORCE;
}

void FixLtau::check_pair()
{
  if (!force->pair || !force->pair_match("nequip", 1))
    error->all(FLERR,
               "fix ltau needs pair_style nequip defined before it (its latents are the LTAU descriptors)");
}

void FixLtau::init()
{
  const ltau_callbacks *cb = LtauBridge::callbacks();
  if (!cb) error->all(FLERR, LtauBridge::NO_DRIVER, "fix ltau");
  check_pair();
  if (nbr_cutoff > 0.0) {
    // the neighbourhood is the model's cutoff: within pair nequip's, so ghosts and the default
    // list cutoff (force cutoff + skin) cover it
    if (nbr_cutoff > force->pair->cutforce + 1e-9)
      error->all(FLERR, "fix ltau: the error model's neighbourhood ({} Å) exceeds pair nequip's cutoff ({} Å); "
                        "re-run 'ltau-md calibrate' with this model", nbr_cutoff, force->pair->cutforce);
    neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_OCCASIONAL);
  }

  // statistical cutoffs: about one false alarm among the atomic environments checked in this run
  const int ntypes = atom->ntypes;
  lo.assign(ntypes + 1, 0.0);
  hi.assign(ntypes + 1, 0.0);
  char message[1024] = {0};
  ltau_fix_init_args a;
  std::memset(&a, 0, sizeof(a));
  a.id = id;
  a.lo = lo.data();
  a.hi = hi.data();
  a.message = message;
  a.message_size = sizeof(message);
  a.nsamples = nsamples;
  a.ngroup = group->count(igroup);
  a.nsteps = update->nsteps;
  a.nevery = nevery;
  a.ntypes = ntypes;
  int status = cb->fix_init(&a);
  LtauBridge::check_status(lmp, world, status, fmt::format("fix ltau {}", id).c_str());
  message[sizeof(message) - 1] = 0;
  // init() also runs for write_data, write_restart, ...: report the cutoffs of runs only
  if (comm->me == 0 && message[0] && update->whichflag != 0) utils::logmesg(lmp, "fix ltau {}: {}\n", id, message);
}

void FixLtau::setup(int)
{
  // values exist at the first step of every run; frames and halts come from end_of_step only,
  // so that a run restarted from a halt does not stop again before it moves
  evaluate(false);
}

void FixLtau::end_of_step()
{
  evaluate(true);
}

void FixLtau::min_setup(int)
{
  evaluate(false);
}

void FixLtau::min_post_force(int)
{
  // minimize: every N iterations (the step counter advances once per iteration); the force
  // evaluation of this iteration left the latents, so the check costs no forward pass
  if (update->ntimestep % nevery == 0) evaluate(true);
}

void FixLtau::post_run()
{
  // a soft halt forces the timeout that ends the run; give later runs in the script their steps
  if (forced_timeout) {
    timer->reset_timeout();
    forced_timeout = false;
  }
}

void FixLtau::evaluate(bool act)
{
  const int nlocal = atom->nlocal;
  const int *mask = atom->mask, *type = atom->type;
  latent.resize(std::max<size_t>(1, (size_t) nlocal * latent_dim));
  for (int i = 0; i < nlocal; ++i)
    for (int c = 0; c < NCOL; ++c) array[i][c] = 0.0;

  ltau_fix_compute_args a;
  std::memset(&a, 0, sizeof(a));
  a.id = id;
  a.step = update->ntimestep;
  a.tag = atom->tag;
  a.type = atom->type;
  a.mask = atom->mask;
  a.out = nlocal ? &array[0][0] : nullptr;
  a.latent = latent.data();
  if (nbr_cutoff > 0.0) {
    // NaN = unknown: phase 0 fills every local atom and the forward comm every ghost; the fill
    // (O(nmax), next to a model forward) keeps any other slot from reading as in domain
    dist.assign(std::max(1, atom->nmax), std::numeric_limits<double>::quiet_NaN());
    dnbr.assign(std::max(1, nlocal), 0.0);
    a.dist = dist.data();
    a.dnbr = dnbr.data();
  }
  a.nlocal = nlocal;
  a.groupbit = groupbit;
  a.latent_dim = latent_dim;
  a.phase = 0;
  int status = LtauBridge::callbacks()->fix_compute(&a);
  LtauBridge::check_status(lmp, world, status, fmt::format("fix ltau {}", id).c_str());
  if (nbr_cutoff > 0.0) neighbourhood_phase(a);    // every rank: it communicates

  double mine_max = 0.0, sum = 0.0, all_sum = 0.0;
  bigint counts[3] = {0, 0, 0}, all[3];    // atoms in the group, above lo, above hi
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    const double e = array[i][0];
    mine_max = std::max(mine_max, e);
    sum += e;
    ++counts[0];
    if (e > lo[type[i]]) ++counts[1];
    if (e > hi[type[i]]) ++counts[2];
  }
  MPI_Allreduce(&mine_max, &vec[0], 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&sum, &all_sum, 1, MPI_DOUBLE, MPI_SUM, world);
  MPI_Allreduce(counts, all, 3, MPI_LMP_BIGINT, MPI_SUM, world);
  // vec[4], frames recorded as duplicates, accumulates over the fix's life
  vec[1] = all[0] > 0 ? all_sum / (double) all[0] : 0.0;
  vec[2] = (double) all[1];
  vec[3] = (double) all[2];
  if (!act) return;

  const bigint n_lo = all[1], n_hi = all[2];
  if ((n_lo > 0 || n_hi > 0) && (!dump.empty() || !queue.empty())) write_frame(n_hi > 0 ? 1 : 0, n_lo, n_hi);
  // vec is a global reduction, so every rank takes the same decision
  if (n_hi > 0 && halt != LtauBridge::HALT_NO) {
    LtauBridge::record_halt(halt, update->ntimestep, n_hi);
    if (halt == LtauBridge::HALT_SOFT) {
      if (comm->me == 0)
        utils::logmesg(lmp,
                       "fix ltau {}: soft halt at step {}: {} atoms above hi (max predicted error {:.4g} "
                       "eV/Å); this run ends, the script goes on\n",
                       id, update->ntimestep, n_hi, vec[0]);
      timer->force_timeout();
      forced_timeout = true;
    } else {
      error->all(FLERR, "fix ltau {}: hard halt at step {}: {} atoms above hi (max predicted error {:.4g} eV/Å)",
                 id, update->ntimestep, n_hi, vec[0]);
    }
  }
}

void FixLtau::neighbourhood_phase(ltau_fix_compute_args &a)
{
  // ghosts get their owners' distances; then each group atom's mean over itself and every atom
  // within the cutoff (a distance that is not finite would be left out)
  comm->forward_comm(this);
  // an occasional list: LAMMPS builds it at most once per reneighbouring (Neighbor::build_one
  // returns at once when it is current), not at every check
  neighbor->build_one(nlist);
  const int *mask = atom->mask;
  double **x = atom->x;
  const double rc2 = nbr_cutoff * nbr_cutoff;
  for (int ii = 0; ii < nlist->inum; ++ii) {
    const int i = nlist->ilist[ii];
    if (!(mask[i] & groupbit) || !std::isfinite(dist[i])) continue;
    double sum = dist[i];
    int count = 1;
    const int *jlist = nlist->firstneigh[i];
    for (int jj = 0; jj < nlist->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz < rc2 && std::isfinite(dist[j])) {
        sum += dist[j];
        ++count;
      }
    }
    dnbr[i] = sum / count;
  }
  a.phase = 1;
  int status = LtauBridge::callbacks()->fix_compute(&a);
  LtauBridge::check_status(lmp, world, status, fmt::format("fix ltau {}", id).c_str());
}

void FixLtau::init_list(int, NeighList *ptr)
{
  nlist = ptr;
}

int FixLtau::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  for (int i = 0; i < n; ++i) buf[i] = dist[list[i]];
  return n;
}

void FixLtau::unpack_forward_comm(int n, int first, double *buf)
{
  for (int i = 0; i < n; ++i) dist[first + i] = buf[i];
}

void FixLtau::write_frame(int reason, bigint n_lo, bigint n_hi)
{
  // every atom (not only the group) so that the frame can be relabelled as it is; IDs travel as
  // tagint and types as int, the per-atom values as doubles
  const int nlocal = atom->nlocal, width = 8 + latent_dim, nprocs = comm->nprocs;
  std::vector<double> mine((size_t) nlocal * width);
  for (int i = 0; i < nlocal; ++i) {
    double *row = &mine[(size_t) i * width];
    for (int d = 0; d < 3; ++d) {
      row[d] = atom->x[i][d];
      row[3 + d] = atom->v[i][d];
    }
    row[6] = array[i][0];
    row[7] = array[i][1];
    const bool in_group = atom->mask[i] & groupbit;
    for (int c = 0; c < latent_dim; ++c) row[8 + c] = in_group ? latent[(size_t) i * latent_dim + c] : 0.0;
  }
  std::vector<int> counts(nprocs), displs(nprocs), vcounts(nprocs), vdispls(nprocs);
  MPI_Gather(&nlocal, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  int natoms = 0;
  for (int p = 0; p < nprocs; ++p) {
    displs[p] = natoms;
    vcounts[p] = counts[p] * width;
    vdispls[p] = natoms * width;
    natoms += counts[p];
  }
  const bool root = comm->me == 0;
  std::vector<tagint> gtag(root ? std::max(natoms, 1) : 1);
  std::vector<int> gtype(root ? std::max(natoms, 1) : 1);
  std::vector<double> rows(root ? std::max<size_t>((size_t) natoms * width, 1) : 1);
  MPI_Gatherv(atom->tag, nlocal, MPI_LMP_TAGINT, gtag.data(), counts.data(), displs.data(), MPI_LMP_TAGINT, 0, world);
  MPI_Gatherv(atom->type, nlocal, MPI_INT, gtype.data(), counts.data(), displs.data(), MPI_INT, 0, world);
  MPI_Gatherv(mine.data(), nlocal * width, MPI_DOUBLE, rows.data(), vcounts.data(), vdispls.data(), MPI_DOUBLE, 0,
              world);

  int status = 0, duplicate = 0;
  if (root) {
    std::vector<int> order(natoms);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int i, int j) { return gtag[i] < gtag[j]; });
    std::vector<tagint> tag(natoms);
    std::vector<int32_t> type(natoms);
    std::vector<double> x(3 * natoms), v(3 * natoms), err(natoms), p(natoms),
        lat(std::max<size_t>(1, (size_t) natoms * latent_dim));
    for (int r = 0; r < natoms; ++r) {
      const int o = order[r];
      const double *row = &rows[(size_t) o * width];
      tag[r] = gtag[o];
      type[r] = gtype[o];
      for (int d = 0; d < 3; ++d) {
        x[3 * r + d] = row[d];
        v[3 * r + d] = row[3 + d];
      }
      err[r] = row[6];
      p[r] = row[7];
      for (int c = 0; c < latent_dim; ++c) lat[(size_t) r * latent_dim + c] = row[8 + c];
    }
    ltau_fix_frame_args a;
    std::memset(&a, 0, sizeof(a));
    a.id = id;
    a.step = update->ntimestep;
    a.tag = tag.data();
    a.type = type.data();
    a.x = x.data();
    a.v = v.data();
    a.error = err.data();
    a.p = p.data();
    a.latent = lat.data();
    LtauBridge::fill_box(lmp, a.boxlo, a.h);
    a.dt = update->dt;
    a.n_above_lo = n_lo;
    a.n_above_hi = n_hi;
    a.natoms = natoms;
    a.reason = reason;
    a.latent_dim = latent_dim;
    a.minimizing = update->whichflag == 2;
    for (int d = 0; d < 3; ++d)
      if (domain->periodicity[d]) a.periodic |= 1 << d;
    status = LtauBridge::callbacks()->fix_frame(&a);
    duplicate = a.duplicate;
  }
  LtauBridge::check_status(lmp, world, status, fmt::format("fix ltau {}", id).c_str());
  MPI_Bcast(&duplicate, 1, MPI_INT, 0, world);
  if (duplicate) {
    vec[4] += 1.0;
    if (root)
      utils::logmesg(lmp, "fix ltau {}: step {}: {} atoms above lo, all within the dedup distance of known "
                     "environments; recorded as a duplicate, not queued\n", id, update->ntimestep, n_lo);
  }
}

double FixLtau::compute_vector(int n)
{
  return vec[n];
}

void FixLtau::write_restart(FILE *fp)
{
  if (comm->me != 0) return;
  int size = sizeof(double);
  fwrite(&size, sizeof(int), 1, fp);
  fwrite(&vec[4], sizeof(double), 1, fp);
}

void FixLtau::restart(char *buf)
{
  vec[4] = reinterpret_cast<double *>(buf)[0];
}

void FixLtau::grow_arrays(int nmax)
{
  memory->grow(array, nmax, NCOL, "fix_ltau:array");
  array_atom = array;
}

void FixLtau::copy_arrays(int i, int j, int)
{
  for (int c = 0; c < NCOL; ++c) array[j][c] = array[i][c];
}

int FixLtau::pack_exchange(int i, double *buf)
{
  for (int c = 0; c < NCOL; ++c) buf[c] = array[i][c];
  return NCOL;
}

int FixLtau::unpack_exchange(int nlocal, double *buf)
{
  for (int c = 0; c < NCOL; ++c) array[nlocal][c] = buf[c];
  return NCOL;
}

double FixLtau::memory_usage()
{
  return (double) atom->nmax * NCOL * sizeof(double) +
      (double) (latent.capacity() + dist.capacity() + dnbr.capacity()) * sizeof(double);
}
