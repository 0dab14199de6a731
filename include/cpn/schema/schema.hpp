// JSON Schema validation (valijson) of every document a client sends, with
// each problem reported as a JSON pointer. Schemas live in schemas/ and are
// compiled into the binary.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cpn/core/document.hpp"

namespace cpn::schema {

// Every embedded file by its path relative to the source tree
// ("schemas/site.schema.json", "examples/topologies/demo.yaml", ...).
const std::map<std::string, std::string>& embedded_files();

// The schema document named "site" (schemas/site.schema.json).
const Json& schema_document(const std::string& name);
std::vector<std::string> schema_names();

// Validates doc against the named schema; on failure, an unprocessable
// Error with one pointer per problem.
Status validate(const std::string& name, const Json& doc, const std::string& what);

// Validation problems only, with pointers prefixed by base (for nested use).
std::vector<FieldError> problems(const std::string& name, const Json& doc, const std::string& base = "");

}  // namespace cpn::schema
