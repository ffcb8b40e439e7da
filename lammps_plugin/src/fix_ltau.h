// fix ID group ltau N ARTIFACT [k K] [scale S] [predictor calibrated|ltau] [lo auto|VALUE]
//                            [hi auto|VALUE] [nsamples N] [dump FILE] [queue DB] [dedup yes|no]
//                            [halt no|soft|hard]
//
// Every N steps (or N minimizer iterations), LTAU per-atom uncertainty of the group's atoms from
// the latents of that step's pair_style nequip evaluation (no second forward pass). When the
// artifact's error model uses the neighbourhood's latent distance, each check sends the group
// atoms' distances to the ghost atoms (forward communication, on every rank) and averages them
// over an occasional full neighbour list within the model's cutoff.
//   per-atom array: f_ID[1] predicted force error (eV/Å), f_ID[2] p
//   global vector:  f_ID[1] max and f_ID[2] mean predicted error over the group,
//                   f_ID[3] atoms above lo, f_ID[4] atoms above hi,
//                   f_ID[5] frames recorded as duplicates so far (dedup yes; carried over a
//                   restart file to a fix of the same ID after read_restart)
// Above lo, the frame goes to the dump file and the queue; above hi, the same and then a halt
// taken by every rank together (soft: the run ends, the script goes on; hard: LAMMPS stops).

#ifndef LMP_FIX_LTAU_H
#define LMP_FIX_LTAU_H

#include "fix.h"

#include "ltau_bridge.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class FixLtau : public Fix {
 public:
  FixLtau(class LAMMPS *, int, char **);
  ~FixLtau() override;

  int setmask() override;
  void init() override;
  void setup(int) override;
  void end_of_step() override;
  void post_run() override;
  void min_setup(int) override;
  void min_post_force(int) override;
  double compute_vector(int) override;
  void write_restart(FILE *) override;
  void restart(char *) override;

  void grow_arrays(int) override;
  void copy_arrays(int, int, int) override;
  int pack_exchange(int, double *) override;
  int unpack_exchange(int, double *) override;
  void init_list(int, class NeighList *) override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  double memory_usage() override;

 private:
  static constexpr int NCOL = 2, NVEC = 5;

  std::string artifact, dump, queue, predictor;    // predictor empty: the artifact's default
  int dedup = 1;
  int k = 0;
  double scale = 0.0;
  int lo_auto = 1, hi_auto = 1;
  double lo_value = 0.0, hi_value = 0.0;
  bigint nsamples = 0;    // 0: atoms in group x checks in the run
  int halt = LtauBridge::HALT_SOFT;
  bool created = false;
  bool forced_timeout = false;

  int latent_dim = 0;
  double nbr_cutoff = 0.0;    // > 0: the error model averages the latent distance over this neighbourhood
  class NeighList *nlist = nullptr;
  std::vector<double> dist, dnbr;    // nearest latent distance (local + ghost), its neighbourhood mean
  double **array = nullptr;
  std::vector<double> latent;
  std::vector<double> lo, hi;    // per atom type
  double vec[NVEC] = {0.0, 0.0, 0.0, 0.0, 0.0};

  void evaluate(bool act);
  void neighbourhood_phase(struct ltau_fix_compute_args &a);
  void write_frame(int reason, bigint n_lo, bigint n_hi);
  void check_pair();
};

}    // namespace LAMMPS_NS

#endif
