// pair_style nequip MODEL [mode auto|domain|gathered] [dtype float32|float64]
// pair_coeff * * EL1 ... ELn
//
// A NequIP model evaluated in Python by the ltau-md driver. Two exact modes:
//   domain:   each rank evaluates its local atoms plus a ghost shell of L*r_max (+ skin); energy
//             of local atoms only, forces on local and ghost atoms, LAMMPS reverse communication
//             sums the ghost forces (newton_pair on), the virial is sum x (x) f over local+ghost.
//   gathered: every rank gathers the whole cell and evaluates its periodic graph; each rank keeps
//             the rows of its local atoms, rank 0 adds the model virial. For small cells, where a
//             ghost shell would hold more atoms than the cell itself.
// mode auto picks gathered when a rank's ghost-extended subdomain would hold at least as many
// atoms as the whole cell, else domain.

#ifndef LMP_PAIR_NEQUIP_H
#define LMP_PAIR_NEQUIP_H

#include "pair.h"

#include "ltau_bridge.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairNequIP : public Pair {
 public:
  enum { MODE_AUTO = -1, MODE_DOMAIN = 0, MODE_GATHERED = 1 };

  PairNequIP(class LAMMPS *);
  ~PairNequIP() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  double memory_usage() override;

  int mode() const { return mode_used; }

 private:
  std::string model_arg, dtype;
  int mode_request = MODE_AUTO;
  int mode_used = MODE_AUTO;
  double r_max = 0.0;
  int num_layers = 0;

  // comm->cutghostuser as the user left it, restored when the domain shell is not needed
  bool ghost_set = false;
  double user_cutghost = 0.0, ghost_we_set = 0.0;

  // domain mode: per-row outputs of the callback for local+ghost atoms
  int nmax = 0;
  double *fbuf = nullptr, *ebuf = nullptr, *vbuf = nullptr;
  int vmax = 0;

  // gathered mode
  std::vector<int> counts, displs, counts3, displs3, gtag, gtype, order, stag, stype;
  std::vector<double> gx, sx, gf, ge, gvatom;

  void allocate();
  int choose_mode();
  void compute_domain();
  void compute_gathered();
  void fill_box(ltau_pair_compute_args &);
};

}    // namespace LAMMPS_NS

#endif
