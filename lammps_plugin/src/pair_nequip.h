// pair_style nequip MODEL [mode auto|domain|gathered] [dtype float32|float64] [device cpu|cuda|auto]
// pair_coeff * * EL1 ... ELn
//
// A NequIP model evaluated in Python by the ltau-md driver. Two exact modes:
//   domain:   each rank evaluates its local atoms with a ghost shell of r_max + skin. The edges
//             come from LAMMPS's full neighbour list (centres local); after each interaction layer
//             the ghost atoms' node features are overwritten by their owners' (forward
//             communication, pack/unpack_forward_comm, variable width) and in the backward pass the
//             gradients on ghost features are summed into their owners (reverse communication);
//             then LAMMPS reverse-communicates the ghost forces (newton_pair on). Energy of local
//             atoms only; the virial is sum x (x) f over local+ghost. A model without the
//             ghost-exchange hook falls back to a shell of L*r_max + skin (with a warning).
//   gathered: every rank gathers the whole cell and evaluates its periodic graph; each rank keeps
//             the rows of its local atoms, rank 0 adds the model virial. For cells too small to
//             split.
// mode auto: a cost model (see choose_mode).

#ifndef LMP_PAIR_NEQUIP_H
#define LMP_PAIR_NEQUIP_H

#include "pair.h"

#include "ltau_bridge.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairNequIP : public Pair {
 public:
  enum { MODE_AUTO = -1, MODE_DOMAIN = 0, MODE_GATHERED = 1, MODE_DEEP_SHELL = 2 };

  PairNequIP(class LAMMPS *);
  ~PairNequIP() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  double memory_usage() override;

  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

  // ltau_exchange(): one forward or reverse communication of per-row node features
  int exchange(int reverse, void *data, int width, int element_size);

  int mode() const { return mode_used; }

 private:
  std::string model_arg, dtype, device;
  int mode_request = MODE_AUTO;
  int mode_used = MODE_AUTO;
  double r_max = 0.0;
  int num_layers = 0;
  int exchange_width = 0;      // 0: the model has no ghost-exchange hook
  std::vector<double> edge_cutsq;    // (ntypes+1)^2

  // comm->cutghostuser as the user left it; raised only for the deep-shell fallback
  bool ghost_set = false;
  double user_cutghost = 0.0, ghost_we_set = 0.0;

  // domain modes: per-row outputs of the callback for local+ghost atoms, and the edges
  int nmax = 0;
  double *fbuf = nullptr, *ebuf = nullptr, *vbuf = nullptr;
  int vmax = 0;
  std::vector<int64_t> edges;
  std::vector<double> vectors;

  // the buffer being exchanged (during one pair_compute callback)
  void *xdata = nullptr;
  int xwidth = 0, xelement = 0;

  // gathered mode
  std::vector<int> counts, displs, counts3, displs3, gtype, order, stype;
  std::vector<tagint> gtag, stag;
  std::vector<double> gx, sx, gf, ge, gvatom;

  void allocate();
  int choose_mode();
  void compute_domain();
  void compute_gathered();
  void build_edges();
  void fill_box(ltau_pair_compute_args &);
};

}    // namespace LAMMPS_NS

#endif
