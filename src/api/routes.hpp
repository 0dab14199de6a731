// One registration function per area of the API.
#pragma once

#include "cpn/api/api.hpp"

namespace cpn::api {

void add_system_routes(http::Router& router, Services& s);
void add_token_routes(http::Router& router, Services& s);
void add_audit_routes(http::Router& router, Services& s);
void add_inventory_routes(http::Router& router, Services& s);
void add_artifact_routes(http::Router& router, Services& s);
void add_event_routes(http::Router& router, Services& s);
void add_blueprint_routes(http::Router& router, Services& s);
void add_catalog_routes(http::Router& router, Services& s);
void add_order_routes(http::Router& router, Services& s);
void add_deployment_routes(http::Router& router, Services& s);
void add_sim_routes(http::Router& router, Services& s);

}  // namespace cpn::api
