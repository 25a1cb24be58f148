// The `merge_proposal_diff` handler: for json_data {merge_proposal,
// repository, source, target} it computes the merge-base diff of source
// against target in a git repository on disk (the git command, run as a
// child process under the job's timeout), and stores the diff, a diffstat
// and the commit ids in jobd.merge_proposal_diff, in the job's own
// transaction. A missing ref is a user error; a locked repository
// (index.lock, a running gc) a retry error. See README.md.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor mergeProposalDiffDescriptor();
std::unique_ptr<runtime::IJobSource> makeMergeProposalDiffSource(
    const config::SectionConfig& section);

}  // namespace jobd::jobtypes
