// The `python` handler: jobs that are Python job classes, run in the
// long-lived interpreters of a `runner = python` section (python/jobd/
// worker.py, issue 20). The daemon never runs them itself: its source only
// describes the section's keys; the ProcessRunner starts `python -m
// jobd.worker` with them.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor pythonDescriptor();
std::unique_ptr<runtime::IJobSource> makePythonSource(const config::SectionConfig& section);

}  // namespace jobd::jobtypes
