// node-deaggregate.js reads a JSON array of Kinesis records
// ({partitionKey, explicitPartitionKey, sequenceNumber, data: base64}) from
// the file named by argv[3], deaggregates each with the aws-kinesis-agg
// package found at argv[2] (checksums checked), and prints a JSON array that
// holds, per Kinesis record, the array of its user records as the package
// returns them. Any error ends the script with status 1.
"use strict";
const fs = require("fs");
const agg = require(process.argv[2]);
const input = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const out = [];
for (const kr of input) {
  agg.deaggregateSync(kr, true, (err, userRecords) => {
    if (err) {
      console.error("deaggregate " + kr.sequenceNumber + ": " + err);
      process.exit(1);
    }
    out.push(userRecords.map((u) => ({
      partitionKey: u.partitionKey,
      explicitPartitionKey: u.explicitPartitionKey === undefined ? null : String(u.explicitPartitionKey),
      sequenceNumber: u.sequenceNumber,
      subSequenceNumber: u.subSequenceNumber === undefined ? null : Number(u.subSequenceNumber),
      data: u.data,
    })));
  });
}
process.stdout.write(JSON.stringify(out));
