// launch/stop_signal.h — SIGTERM and SIGUSR1 ask a training run to stop cleanly.
//
// Schedulers send SIGTERM (Slurm, Kubernetes) or a chosen signal such as SIGUSR1
// (`sbatch --signal=USR1@120`, forwarded by mpirun) some time before they kill a job.
// The handler only records the signal; the trainer looks after each step, all ranks
// agree through an all-reduce (a signal may reach some ranks only), and the run saves a
// checkpoint and exits 0. A second signal of the same kind is not special: the run is
// already on its way out at the next step boundary.
#pragma once

namespace loom {

class StopSignal {
public:
  StopSignal();   // installs the handlers (SA_RESTART: a signal never fails a read or write)
  ~StopSignal();  // restores the previous ones
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  int received() const;  // the signal number, 0 when none arrived
};

}  // namespace loom
