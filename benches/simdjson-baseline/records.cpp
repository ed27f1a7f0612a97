// Baseline for the parser core: simdjson (C++, the reference SIMD JSON parser) on the same
// generated CloudTrail records, one document per line (written by the parser_core example).
// Prints MiB/s of record bytes, best of 15, for:
//   - DOM parse of each record: full validation, the whole record indexed;
//   - DOM parse_many over the NDJSON: simdjson's batched mode;
//   - DOM parse of each record, then its key fields read from the DOM (names matched by
//     length then bytes, values as string_view without a copy): the task trailhose's parser
//     core does, done by simdjson;
//   - On-Demand reading the same key fields as trailhose (what it skips is validated only
//     structurally, so this does less than trailhose's fast path).
// Built and run by benches/simdjson-baseline.sh.
#include <simdjson.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>
using namespace simdjson;

static double best_of(int n, const std::function<size_t()>& f, size_t* chk) {
  double best = 1e9;
  for (int i = 0; i < n; i++) {
    auto t = std::chrono::steady_clock::now();
    *chk = f();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    if (s < best) best = s;
  }
  return best;
}

int main(int argc, char** argv) {
  for (int a = 1; a < argc; a++) {
    std::string name = argv[a];
    name = name.substr(name.rfind('/') + 1);
    name = name.substr(0, name.find('.'));
    std::ifstream in(argv[a], std::ios::binary);
    std::stringstream ss; ss << in.rdbuf();
    std::string all = ss.str();
    std::vector<std::pair<size_t, size_t>> lines;
    size_t start = 0;
    for (size_t i = 0; i < all.size(); i++) if (all[i] == '\n') { lines.push_back({start, i - start}); start = i + 1; }
    size_t bytes = 0; for (auto& l : lines) bytes += l.second;
    // simdjson needs padding past each document; copy each record into a padded buffer.
    std::vector<padded_string> docs; docs.reserve(lines.size());
    for (auto& l : lines) docs.emplace_back(all.data() + l.first, l.second);
    padded_string nd(all);
    size_t chk = 0;
    auto mibs = [&](double s) { return bytes / s / 1048576.0; };

    dom::parser dp;
    double s1 = best_of(15, [&]() { size_t n = 0; for (auto& d : docs) { dom::element e; if (dp.parse(d).get(e)) abort(); n += e.type() == dom::element_type::OBJECT; } return n; }, &chk);
    printf("%-8s simdjson DOM parse per record          %8.1f MiB/s (chk %zu)\n", name.c_str(), mibs(s1), chk);

    double s2 = best_of(15, [&]() { size_t n = 0; dom::document_stream st; if (dp.parse_many(nd).get(st)) abort(); for (auto e : st) { dom::element v; if (e.get(v)) abort(); n++; } return n; }, &chk);
    printf("%-8s simdjson DOM parse_many (NDJSON)       %8.1f MiB/s (chk %zu)\n", name.c_str(), mibs(s2), chk);

    // DOM + key fields: the same task as trailhose's parser core (validate every byte, read
    // the key fields). Names are matched by length, then bytes.
    static const std::string_view top_names[] = {"eventTime","eventID","eventName","eventSource","awsRegion","eventType","eventCategory","recipientAccountId","sourceIPAddress","errorCode","readOnly","managementEvent","userIdentity"};
    static const std::string_view user_names[] = {"type","arn","accountId","principalId","userName"};
    auto slot = [](std::string_view k, const std::string_view* names, size_t count) -> int {
      for (size_t i = 0; i < count; i++)
        if (k.size() == names[i].size() && memcmp(k.data(), names[i].data(), k.size()) == 0) return int(i);
      return -1;
    };
    double s4 = best_of(15, [&]() {
      size_t n = 0;
      for (auto& d : docs) {
        dom::element e; if (dp.parse(d).get(e)) abort();
        dom::object o; if (e.get_object().get(o)) abort();
        for (auto field : o) {
          int i = slot(field.key, top_names, 13);
          if (i < 0) continue;
          if (i == 12) {
            dom::object u; if (field.value.get_object().get(u)) continue;
            for (auto uf : u) if (slot(uf.key, user_names, 5) >= 0) { std::string_view v; if (!uf.value.get_string().get(v)) n += v.size(); }
          } else if (i >= 10) { bool b; if (!field.value.get_bool().get(b)) n += b; }
          else { std::string_view v; if (!field.value.get_string().get(v)) n += v.size(); }
        }
      }
      return n; }, &chk);
    printf("%-8s simdjson DOM parse + key fields        %8.1f MiB/s (chk %zu)\n", name.c_str(), mibs(s4), chk);

    // On-Demand, reading the same key fields as trailhose (skipped values are not fully validated).
    ondemand::parser op;
    static const char* top[] = {"eventTime","eventID","eventName","eventSource","awsRegion","eventType","eventCategory","eventVersion","recipientAccountId","sourceIPAddress","errorCode"};
    static const char* usr[] = {"type","arn","accountId","principalId","userName"};
    double s3 = best_of(15, [&]() {
      size_t n = 0;
      for (auto& d : docs) {
        ondemand::document doc; if (op.iterate(d).get(doc)) abort();
        ondemand::object o; if (doc.get_object().get(o)) abort();
        for (auto field : o) {
          std::string_view k; if (field.unescaped_key().get(k)) abort();
          if (k == "userIdentity") {
            ondemand::object u; if (field.value().get_object().get(u)) continue;
            for (auto uf : u) { std::string_view uk; if (uf.unescaped_key().get(uk)) abort();
              for (auto name : usr) if (uk == name) { std::string_view v; if (!uf.value().get_string().get(v)) n += v.size(); } }
          } else if (k == "readOnly" || k == "managementEvent") { bool b; if (!field.value().get_bool().get(b)) n += b; }
          else for (auto name : top) if (k == name) { std::string_view v; if (!field.value().get_string().get(v)) n += v.size(); break; }
        }
      }
      return n; }, &chk);
    printf("%-8s simdjson On-Demand key fields / record %8.1f MiB/s (chk %zu)\n", name.c_str(), mibs(s3), chk);
  }
}
