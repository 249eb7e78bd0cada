// launch/rank_agreement.h — every rank of a job must run the same configuration on the
// same data; a job whose ranks disagree (an MPMD launch with different options, a
// relative path resolving to different files per node) would otherwise train
// something undefined or hang in a collective of mismatched sizes.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "io/data_loader.h"
#include "io/token_dataset.h"

namespace loom {

// Collective over `comm`: refuses (the same loom::Error on every rank) when the ranks
// hold different `ini` text ("[section]\nkey = value" lines, as to_ini writes). Each
// rank hashes its text and the hashes are all-gathered; only on a mismatch are the
// texts gathered, to name each differing `section.key` with its value on every rank.
// `what` names the text in the message ("configuration", "data").
void check_ranks_agree(MPI_Comm comm, const std::string& ini, const std::string& what);

// The datasets' identity as INI text for check_ranks_agree: each training source's and
// the val set's tokens checksum (token_source.h: an HDF5 dataset's stored one, a
// Megatron pair's index CRC) and size, so the same path naming different files on
// different ranks is caught.
std::string data_checksums_ini(const Blend& train, const TokenSource& val);

// "section.key" differences between the ranks' INI texts, one line each (no final
// newline): "  train.steps: 3 on rank 0; 4 on rank 1". Empty when all agree.
std::string ini_differences(const std::vector<std::string>& ini_per_rank);

}  // namespace loom
