// The bridge between the ltau-md LAMMPS styles and the Python driver (`ltau-md run`).
//
// The C++ styles own storage, communication and LAMMPS bookkeeping; the model and LTAU work run
// in Python behind C function pointers that the driver registers with ltau_register(). Every
// call passes ONE struct pointer; lammps_plugin/bridge.py mirrors these structs with ctypes and
// compares their sizes with ltau_abi_size() before registering, so a layout drift cannot go
// unnoticed. Keep the two files in step and bump LTAU_ABI_VERSION on any change.
#ifndef LMP_LTAU_BRIDGE_H
#define LMP_LTAU_BRIDGE_H

#include <cstdint>
#include <mpi.h>

namespace LAMMPS_NS {
class LAMMPS;
}

#define LTAU_ABI_VERSION 5

extern "C" {

// Atom IDs (tagint) and counts (bigint) pass as LAMMPS defines them (LAMMPS_SMALLBIG: 32- and
// 64-bit; LAMMPS_BIGBIG: both 64-bit): tag arrays are `const void *`, read by Python with the
// width ltau_abi_size("tagint") reports; counts are int64_t.

// pair_style nequip MODEL ...: load the model on this rank.
struct ltau_pair_settings_args {
  const char *model;       // in: MODEL argument
  const char *dtype;       // in: "float32" or "float64"
  const char *device;      // in: "cpu", "cuda" or "auto"
  double r_max;            // out: model cutoff (Å)
  int32_t num_layers;      // out: message-passing layers L
  int32_t num_species;     // out
  int32_t exchange_width;  // out: widest node-feature row exchanged between layers; 0 = the model
                           //      has no ghost-exchange hook (domain mode then needs an L*r_max shell)
  int32_t pad;
};

// pair_coeff * * EL1 ... ELn: one element per LAMMPS atom type.
struct ltau_pair_coeff_args {
  const char *elements;    // in: space separated, type 1 first
  double *cutoff;          // out: (ntypes+1)^2 edge cutoffs per type pair (Å; r_max or the model's
                           //      per-edge-type cutoff), row-major, index 0 unused
  int32_t ntypes;          // in
  int32_t pad;
};

// One force evaluation.
//   mode 0, domain with per-layer exchange: rows = local then ghost atoms of this rank (ghost
//     shell r_max + skin); edges from LAMMPS's full neighbour list, centres local; after each
//     interaction layer the model calls ltau_exchange() for the ghost rows' node features (and
//     again in the backward pass for their gradients); energy of the first nlocal rows.
//   mode 1, gathered: rows = every atom of the cell sorted by tag, all carrying energy; no edges.
//   mode 2, domain with a deep shell (models without the exchange hook): rows = local + ghosts of
//     an L*r_max + skin shell; no edges (built in Python); energy of the first nlocal rows.
struct ltau_pair_compute_args {
  int64_t step;
  double *x;            // in: nrows x 3
  int32_t *type;        // in: LAMMPS types (1-based)
  const void *tag;      // in: tagint
  double *f;            // out: nrows x 3, -dE/dx
  double *eatom;        // out: nrows, per-atom energy (rows < nlocal)
  double *vatom;        // out: nrows x 6 (xx yy zz xy xz yz) or null when not requested
  double *virial;       // out: 6, virial of the whole periodic cell (gathered only)
  int64_t *edges;       // in, mode 0: 2 x nedges row indices (centres, then neighbours)
  double *vectors;      // in, mode 0: nedges x 3, x[neighbour] - x[centre]
  int64_t nedges;
  double boxlo[3];
  double h[6];          // xprd yprd zprd xy xz yz
  int32_t mode;
  int32_t nlocal;       // energy-carrying rows
  int32_t nrows;
  int32_t periodic;     // 1 when the box is periodic in x, y and z
};

// fix ID group ltau N ARTIFACT ...: load the artifact, check it against the pair's model.
struct ltau_fix_create_args {
  const char *id;
  const char *artifact;
  const char *dump;      // null: no dump file
  const char *queue;     // null: no queue
  const char *predictor; // null: the artifact's default (calibrated where it has an error model)
  double scale;          // <= 0: the artifact's s per species
  double lo, hi;         // used when lo_auto / hi_auto are 0
  int32_t k;             // <= 0: the artifact's k
  int32_t lo_auto, hi_auto;
  int32_t dedup;             // 1: a frame whose flagged atoms are all known is recorded, not queued
  int32_t descriptor_dim;    // out
  double neighbourhood_cutoff;  // out: Å of the neighbourhood the error model averages d over (0: none)
};

// Before each run: per-type cutoffs for the atomic environments this run examines (N: the
// nsamples keyword, or group atoms x checks of the run; decided in ltau_md.run_cutoffs).
struct ltau_fix_init_args {
  const char *id;
  double *lo;           // out: ntypes+1 (index 0 unused)
  double *hi;           // out: ntypes+1
  char *message;        // out: one line for the log (rank 0 prints it)
  int64_t nsamples;     // the nsamples keyword, 0 when not given
  int64_t ngroup;       // atoms in the fix group
  int64_t nsteps;       // steps of the coming run
  int32_t nevery;       // the fix's check interval N
  int32_t ntypes;
  int32_t message_size;
  int32_t pad;
};

// Every N steps: predicted error and p of this rank's local group atoms, from the latents of
// this step's force evaluation. With a neighbourhood cutoff, in two phases: phase 0 searches and
// writes each local atom's nearest latent distance into dist; the fix sends dist to the ghost
// atoms (forward communication) and averages it over each atom's neighbourhood into dnbr; phase 1
// turns the search and dnbr into out. Without one, phase 0 writes out directly.
struct ltau_fix_compute_args {
  const char *id;
  int64_t step;
  const void *tag;      // tagint
  int32_t *type, *mask;
  double *out;          // out: nlocal x 2 (error eV/Å, p); rows outside the group are left 0
  double *latent;       // out: nlocal x latent_dim descriptors of group atoms
  double *dist;         // phase 0 out: nlocal, every local atom (d̄ is over the whole neighbourhood)
  double *dnbr;         // phase 1 in: nlocal
  int32_t nlocal;
  int32_t groupbit;
  int32_t latent_dim;
  int32_t phase;
};

// Rank 0 only: one frame above lo (or hi), every atom sorted by tag, for the dump and the queue.
struct ltau_fix_frame_args {
  const char *id;
  int64_t step;
  const void *tag;      // tagint
  int32_t *type;
  double *x, *v;        // natoms x 3 (x inside the box, v in Å/ps)
  double *error, *p;    // natoms (0 outside the group)
  double *latent;       // natoms x latent_dim
  double boxlo[3];
  double h[6];
  double dt;            // timestep, ps
  int64_t n_above_lo, n_above_hi;
  int64_t natoms;
  int32_t reason;       // 0 lo, 1 hi
  int32_t latent_dim;
  int32_t periodic;     // bit d set when the box is periodic along d
  int32_t minimizing;   // 1 during minimize (step = iteration)
  int32_t duplicate;    // out: 1 when every flagged atom was already known (recorded, not queued)
  int32_t pad;
};

// Each callback returns 0 on success; on failure it stores a message with ltau_set_error()
// and returns nonzero.
struct ltau_callbacks {
  int (*pair_settings)(ltau_pair_settings_args *);
  int (*pair_coeff)(ltau_pair_coeff_args *);
  int (*pair_compute)(ltau_pair_compute_args *);
  int (*fix_create)(ltau_fix_create_args *);
  int (*fix_init)(ltau_fix_init_args *);
  int (*fix_compute)(ltau_fix_compute_args *);
  int (*fix_frame)(ltau_fix_frame_args *);
  int (*fix_destroy)(const char *id);
};

// Exported to the driver (ctypes).
int ltau_abi_version();
int ltau_abi_size(const char *name);
int ltau_register(const ltau_callbacks *callbacks);
void ltau_unregister();
void ltau_set_error(const char *message);
int ltau_halt_kind();          // 0 none, 1 soft, 2 hard (latest halt)
int64_t ltau_halt_step();
int64_t ltau_halt_count();     // atoms above hi at the halt
void ltau_clear_halt();

// Called by the model (through Python) in the middle of pair_style nequip's mode-0 evaluation,
// the same number of times and widths on every rank: forward (reverse = 0) overwrites the ghost
// rows of data (nrows x width, element size 4 or 8 bytes) with their owners' rows (LAMMPS forward
// communication); reverse (1) adds the ghost rows into their owners' rows (reverse
// communication). Returns 0, or nonzero outside such an evaluation.
int ltau_exchange(int reverse, void *data, int width, int element_size);
}

namespace LtauBridge {

enum { HALT_NO = 0, HALT_SOFT = 1, HALT_HARD = 2 };

// Registered callbacks, or null when the plugin was loaded without the ltau-md driver.
const ltau_callbacks *callbacks();

// The one-line error for a plugin loaded into plain `lmp`.
extern const char *const NO_DRIVER;

// Collective: if any rank's status is nonzero, every rank stops with error->all carrying the
// message of the lowest failing rank (no rank is left waiting in a later collective).
void check_status(LAMMPS_NS::LAMMPS *lmp, MPI_Comm world, int status, const char *where);

// Not collective: this rank failed where the others cannot be told (inside communication they
// wait in); error->one with the stored message, which ends the job.
[[noreturn]] void fail_one(LAMMPS_NS::LAMMPS *lmp, const char *where);

void record_halt(int kind, int64_t step, int64_t count);

// The box as the callbacks take it: boxlo and h = (xprd, yprd, zprd, xy, xz, yz).
void fill_box(LAMMPS_NS::LAMMPS *lmp, double boxlo[3], double h[6]);

}    // namespace LtauBridge

#endif
