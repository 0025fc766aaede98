//! rule::kql tests: the grammar, and each Kibana / Elasticsearch fact of the module doc.
