// What `cpnd --dev` loads besides the demo topology: the component
// templates and blueprints of blueprints/ (published) and the example
// offerings of examples/offerings/ (published), all compiled in.
#pragma once

#include "cpn/catalog/catalog.hpp"

namespace cpn::daemon {

struct DevCatalogue {
  int templates = 0, blueprints = 0, offerings = 0;
};

// Loads what is not there yet; an existing version is left alone.
Result<DevCatalogue> load_dev_catalogue(blueprint::Library& library, catalog::Catalog& catalog);

}  // namespace cpn::daemon
